//! checkpoint / restore side by side with runc (Debian's 1.1.5): the same bundle
//! and commands through both. CRIU works only where `criu check` passes (the v2
//! guest, through V2_TESTS); elsewhere both must fail the same way.

mod common;

use std::process::{Command, Stdio};

use common::parity::{assert_same_code, side_by_side, Rt};
use common::{wait_for, Bundle, Env};

const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done";

fn criu_works() -> bool {
    Command::new("criu").arg("check").output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Looks good")
    })
}

/// `RT run -d` with stdio on /dev/null (CRIU 3.17 cannot dump host files as stdio).
fn run_detached(env: &Env, rt: Rt, b: &Bundle, id: &str) {
    let mut cmd = env.rt_cmd(rt, &["run", "-d", "-b", b.dir.to_str().unwrap(), id]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    assert!(cmd.status().unwrap().success(), "{} run -d", rt.name());
}

fn count(env: &Env, rt: Rt, id: &str) -> Option<u64> {
    env.rt(rt, &["exec", id, "cat", "/dev/shm/count"])
        .stdout
        .trim()
        .parse()
        .ok()
}

fn keeps_counting(env: &Env, rt: Rt, id: &str) -> bool {
    let Some(n) = count(env, rt, id) else {
        return false;
    };
    wait_for(|| count(env, rt, id).is_some_and(|m| m > n))
}

fn status(env: &Env, rt: Rt, id: &str) -> String {
    let out = env.rt(rt, &["state", id]);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .map(|v| v["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_else(|_| format!("exit {}", out.code))
}

fn restore_detached(env: &Env, rt: Rt, b: &Bundle, id: &str, images: &str) -> i32 {
    let args = [
        "restore",
        "-d",
        "-b",
        b.dir.to_str().unwrap(),
        "--image-path",
        images,
        id,
    ];
    let mut cmd = env.rt_cmd(rt, &args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    common::code_of(cmd.status().unwrap())
}

#[test]
fn counter_survives_checkpoint_and_restore_in_both() {
    if !criu_works() {
        eprintln!("skipped: `criu check` fails here; runs in the v2 guest");
        return;
    }
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sh", "-c", COUNTER]);
    let seen = side_by_side(|rt| {
        let id = env.id(rt.name());
        run_detached(&env, rt, &b, &id);
        assert!(wait_for(|| count(&env, rt, &id).is_some_and(|n| n > 2)));
        let images = env.mkdir(&format!("img-{}", rt.name()));
        let images = images.to_str().unwrap();
        let ck = env
            .rt(rt, &["checkpoint", "--image-path", images, &id])
            .code;
        let gone = status(&env, rt, &id);
        let rs = restore_detached(&env, rt, &b, &id, images);
        let restored = status(&env, rt, &id);
        let counting = keeps_counting(&env, rt, &id);
        env.rt(rt, &["delete", "-f", &id]);
        (ck, gone, rs, restored, counting)
    });
    assert_eq!(
        seen[0],
        (0, "exit 1".to_string(), 0, "running".to_string(), true)
    );
    assert_eq!(seen[0], seen[1], "runc vs paddock");
    env.assert_clean();
}

#[test]
fn leave_running_in_both() {
    if !criu_works() {
        eprintln!("skipped: `criu check` fails here; runs in the v2 guest");
        return;
    }
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sh", "-c", COUNTER]);
    let seen = side_by_side(|rt| {
        let id = env.id(rt.name());
        run_detached(&env, rt, &b, &id);
        let images = env.mkdir(&format!("img-{}", rt.name()));
        let args = [
            "checkpoint",
            "--leave-running",
            "--image-path",
            images.to_str().unwrap(),
            &id,
        ];
        let ck = env.rt(rt, &args).code;
        let after = (ck, status(&env, rt, &id), keeps_counting(&env, rt, &id));
        env.rt(rt, &["delete", "-f", &id]);
        after
    });
    assert_eq!(seen[0], (0, "running".to_string(), true));
    assert_eq!(seen[0], seen[1], "runc vs paddock");
    env.assert_clean();
}

/// Refusals before CRIU dumps anything: the same exit code, the container untouched.
#[test]
fn refused_checkpoints_in_both() {
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sh", "-c", COUNTER]);
    let cases: [&[&str]; 4] = [
        &["--manage-cgroups-mode", "bogus"],
        &["--empty-ns", "pid"],
        &["--parent-path", "/abs"],
        &["--page-server", "nohost"],
    ];
    for flags in cases {
        let outs = side_by_side(|rt| {
            let id = env.id(rt.name());
            run_detached(&env, rt, &b, &id);
            let images = env.mkdir("img");
            let mut args = vec!["checkpoint", "--image-path", images.to_str().unwrap()];
            args.extend_from_slice(flags);
            args.push(&id);
            let out = env.rt(rt, &args);
            assert_eq!(status(&env, rt, &id), "running", "{} {flags:?}", rt.name());
            env.rt(rt, &["delete", "-f", &id]);
            out
        });
        assert_same_code(&format!("checkpoint {flags:?}"), &outs);
        assert_eq!(outs[1].code, 1);
    }
    // A created container cannot be checkpointed.
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        let mut cmd = env.rt_cmd(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        assert!(cmd.status().unwrap().success());
        let out = env.rt(
            rt,
            &[
                "checkpoint",
                "--image-path",
                env.mkdir("img").to_str().unwrap(),
                &id,
            ],
        );
        env.rt(rt, &["delete", "-f", &id]);
        out
    });
    assert_same_code("checkpoint of a created container", &outs);
    assert!(
        outs[1]
            .stderr
            .contains("cannot be checkpointed in created state"),
        "{outs:?}"
    );
    env.assert_clean();
}

/// Where CRIU cannot work on the kernel, both fail and leave the container running.
#[test]
fn checkpoint_where_criu_check_fails_in_both() {
    if criu_works() {
        eprintln!("skipped: `criu check` passes here");
        return;
    }
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sh", "-c", COUNTER]);
    let seen = side_by_side(|rt| {
        let id = env.id(rt.name());
        run_detached(&env, rt, &b, &id);
        let images = env.mkdir("img");
        let out = env.rt(
            rt,
            &["checkpoint", "--image-path", images.to_str().unwrap(), &id],
        );
        let after = (out.code, status(&env, rt, &id));
        env.rt(rt, &["delete", "-f", &id]);
        after
    });
    assert_eq!(seen[1], (1, "running".to_string()));
    assert_eq!(seen[0], seen[1], "runc vs paddock");
    env.assert_clean();
}
