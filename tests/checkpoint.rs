//! checkpoint / restore with CRIU. Where `criu check` fails (this project's host
//! kernel: CRIU cannot read its vDSO) the commands must fail with CRIU's own
//! reason and leave nothing behind; where it passes (the pure v2 guest, through
//! V2_TESTS) a counter loop must survive checkpoint and restore.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{recv_one_fd, wait_for, Bundle, Env, Out};

/// A counter that keeps counting in a tmpfs of the container (the rootfs is read-only).
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done";

/// `criu check`'s verdict: Ok when CRIU works on this kernel, else its reason.
fn criu_check() -> Result<(), String> {
    let out = match Command::new("criu").arg("check").output() {
        Ok(o) => o,
        Err(e) => return Err(format!("criu: {e}")),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("Looks good") {
        return Ok(());
    }
    // The kernel feature that failed, else CRIU's first error.
    let line = text
        .lines()
        .find(|l| l.contains("failed when initializing"))
        .or_else(|| text.lines().find(|l| l.contains("Error")))
        .unwrap_or("");
    Err(line.to_string())
}

/// Skips (with a note) where CRIU cannot work on this kernel.
macro_rules! require_criu {
    () => {
        if let Err(why) = criu_check() {
            eprintln!("skipped: `criu check` fails here ({why}); runs in the v2 guest");
            return;
        }
    };
}

/// `run -d` with stdio on /dev/null: CRIU 3.17 cannot dump a container whose
/// stdio are files of the host.
fn run_detached(env: &Env, b: &Bundle, id: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "-b", b.dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    let mut cmd = env.cmd(&args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    assert!(cmd.status().unwrap().success(), "run -d {id}");
}

fn counter_bundle(env: &Env) -> Bundle {
    env.bundle(&["sh", "-c", COUNTER])
}

/// The container's counter, read through exec.
fn count(env: &Env, id: &str) -> u64 {
    let out = env
        .paddock(&["exec", id, "cat", "/dev/shm/count"])
        .success();
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("count: {out:?}"))
}

/// Waits for the counter to pass `n`; before the container's first write there is no
/// file yet (an exec can come first: under emulation the shell starts slowly).
fn wait_count_above(env: &Env, id: &str, n: u64) -> bool {
    wait_for(|| {
        let out = env.paddock(&["exec", id, "cat", "/dev/shm/count"]);
        out.ok() && out.stdout.trim().parse::<u64>().is_ok_and(|c| c > n)
    })
}

fn checkpoint(env: &Env, id: &str, images: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["checkpoint", "--image-path", images.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    env.paddock(&args)
}

fn restore(env: &Env, b: &Bundle, id: &str, images: &Path, extra: &[&str]) -> Out {
    let mut args = vec![
        "restore",
        "-d",
        "-b",
        b.dir.to_str().unwrap(),
        "--image-path",
        images.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    let mut cmd = env.cmd(&args);
    let errf = env.dir.join(format!("restore-{id}.err"));
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap());
    let status = cmd.status().unwrap();
    Out {
        code: common::code_of(status),
        stdout: String::new(),
        stderr: std::fs::read_to_string(&errf).unwrap_or_default(),
    }
}

#[test]
fn checkpoint_fails_with_criu_reason_where_criu_check_fails() {
    let Err(why) = criu_check() else {
        eprintln!("skipped: `criu check` passes here; the failure path is tested where it fails");
        return;
    };
    let env = Env::new();
    let b = counter_bundle(&env);
    let id = env.id("ckfail");
    run_detached(&env, &b, &id, &[]);
    let images = env.dir.join("img");
    let out = checkpoint(&env, &id, &images, &[]).fails_with_one_line();
    assert!(out.stderr.starts_with("criu failed: "), "{out:?}");
    // CRIU's own reason, as `criu check` states it (without the source position).
    let reason = why.rsplit("): ").next().unwrap().trim();
    assert!(out.stderr.contains(reason), "{reason:?} in {out:?}");
    // The container is untouched.
    assert_eq!(env.status(&id), "running");
    // A restore fails the same way and leaves no container, cgroup or mount.
    let other = env.id("rsfail");
    let out = restore(&env, &b, &other, &images, &[]).fails_with_one_line();
    assert!(out.stderr.contains("criu failed: "), "{out:?}");
    env.paddock(&["state", &other]).fails_with_one_line();
    env.paddock(&["delete", "-f", &id]).success();
    env.assert_clean();
}

#[test]
fn bad_criu_flags_are_one_line_errors() {
    let env = Env::new();
    let b = counter_bundle(&env);
    let id = env.id("ckflags");
    run_detached(&env, &b, &id, &[]);
    let images = env.dir.join("img");
    for (flags, want) in [
        (
            &["--parent-path", "/abs"][..],
            "--parent-path must be relative",
        ),
        (&["--parent-path", "missing"][..], "invalid --parent-path"),
        (
            &["--manage-cgroups-mode", "bogus"][..],
            "invalid manage-cgroups-mode value",
        ),
        (
            &["--empty-ns", "pid"][..],
            "namespace \"pid\" is not supported",
        ),
        (
            &["--page-server", "nohost"][..],
            "--page-server ADDRESS:PORT",
        ),
    ] {
        let out = checkpoint(&env, &id, &images, flags).fails_with_one_line();
        assert!(out.stderr.contains(want), "{flags:?}: {out:?}");
    }
    assert_eq!(env.status(&id), "running");
    // Only a running (or paused) container can be checkpointed.
    let created = env.id("ckcreated");
    env.create(&b, &created).success();
    let out = checkpoint(&env, &created, &images, &[]).fails_with_one_line();
    assert!(
        out.stderr
            .contains("cannot be checkpointed in created state"),
        "{out:?}"
    );
    for c in [&id, &created] {
        env.paddock(&["delete", "-f", c]).success();
    }
    env.assert_clean();
}

#[test]
fn failed_restore_leaves_nothing_behind() {
    let env = Env::new();
    let b = counter_bundle(&env);
    let id = env.id("rsbad");
    let out = restore(&env, &b, &id, &env.dir.join("no-such-dir"), &[]).fails_with_one_line();
    assert!(out.stderr.contains("--image-path"), "{out:?}");
    assert!(!env.dir.join("no-such-dir").exists(), "image dir made");
    // Images CRIU cannot use: the cgroup, the rootfs bind for CRIU and the state go again.
    let bad = env.mkdir("badimg");
    std::fs::write(bad.join("descriptors.json"), "[\"/dev/null\"]").unwrap();
    let out = restore(&env, &b, &id, &bad, &[]).fails_with_one_line();
    assert!(out.stderr.contains("criu failed"), "{out:?}");
    env.paddock(&["state", &id]).fails_with_one_line();
    env.assert_clean();
}

#[test]
fn counter_survives_checkpoint_and_restore() {
    require_criu!();
    let env = Env::new();
    let b = counter_bundle(&env);
    let id = env.id("ck");
    run_detached(&env, &b, &id, &[]);
    assert!(wait_count_above(&env, &id, 3));
    let images = env.dir.join("img");
    checkpoint(&env, &id, &images, &[]).success();
    // As runc: a checkpointed container is gone (unless --leave-running).
    env.paddock(&["state", &id]).fails_with_one_line();
    assert!(images.join("descriptors.json").exists());
    let pid_file = env.dir.join("restored.pid");
    let out = restore(
        &env,
        &b,
        &id,
        &images,
        &["--pid-file", pid_file.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let state = env.state(&id);
    assert_eq!(state["status"], "running");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(state["pid"].as_i64().unwrap().to_string(), pid);
    // The count goes on from where it was, not from 0, and keeps counting.
    let after = count(&env, &id);
    assert!(after > 3, "restored counter restarted: {after}");
    assert!(wait_count_above(&env, &id, after));
    // A normal container: in its cgroup, exec works (above), kill and delete work.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&id),
        "restored init not in the container's cgroup: {cgroup}"
    );
    env.paddock(&["kill", &id, "KILL"]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
    env.assert_clean();
}

#[test]
fn leave_running_keeps_the_container() {
    require_criu!();
    let env = Env::new();
    let b = counter_bundle(&env);
    let id = env.id("ckleave");
    run_detached(&env, &b, &id, &[]);
    assert!(wait_count_above(&env, &id, 2));
    let images = env.dir.join("img");
    checkpoint(&env, &id, &images, &["--leave-running"]).success();
    assert_eq!(env.status(&id), "running");
    let n = count(&env, &id);
    assert!(wait_count_above(&env, &id, n));
    // The images restore into a second container next to the first.
    let copy = env.id("ckcopy");
    let out = restore(&env, &b, &copy, &images, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(env.status(&copy), "running");
    for c in [&id, &copy] {
        env.paddock(&["delete", "-f", c]).success();
    }
    env.assert_clean();
}

#[test]
fn pre_dump_then_dump() {
    require_criu!();
    let env = Env::new();
    let b = counter_bundle(&env);
    let id = env.id("ckpre");
    run_detached(&env, &b, &id, &[]);
    assert!(wait_count_above(&env, &id, 2));
    let parent = env.dir.join("parent");
    checkpoint(&env, &id, &parent, &["--pre-dump"]).success();
    assert_eq!(env.status(&id), "running", "pre-dump leaves it running");
    let images = env.dir.join("img");
    std::fs::create_dir(&images).unwrap();
    checkpoint(&env, &id, &images, &["--parent-path", "../parent"]).success();
    assert!(
        images.join("parent").exists(),
        "criu links the parent images"
    );
    let out = restore(&env, &b, &id, &images, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let n = count(&env, &id);
    assert!(wait_count_above(&env, &id, n));
    env.paddock(&["delete", "-f", &id]).success();
    env.assert_clean();
}

/// Accepts one connection on the console socket (bounded wait) and returns the pty master.
fn accept_master(listener: &UnixListener) -> Option<OwnedFd> {
    listener.set_nonblocking(true).unwrap();
    let mut conn = None;
    wait_for(|| {
        conn = listener.accept().ok();
        conn.is_some()
    });
    let (conn, _) = conn?;
    conn.set_nonblocking(false).unwrap();
    Some(recv_one_fd(conn.as_raw_fd()))
}

#[test]
fn container_with_a_terminal() {
    require_criu!();
    let env = Env::new();
    let mut b = counter_bundle(&env);
    b.config(|c| c["process"]["terminal"] = true.into());
    let id = env.id("cktty");
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let sock_arg = sock.to_str().unwrap();
    let runner = std::thread::scope(|s| {
        let h = s.spawn(|| accept_master(&listener));
        run_detached(&env, &b, &id, &["--console-socket", sock_arg]);
        h.join().unwrap().expect("pty master from run")
    });
    assert!(wait_count_above(&env, &id, 2));
    // As runc: CRIU hands the orphaned pty master back on restore; no --shell-job.
    let images = env.dir.join("img");
    checkpoint(&env, &id, &images, &[]).success();
    drop(runner);
    let restored = std::thread::scope(|s| {
        let h = s.spawn(|| accept_master(&listener));
        let out = restore(&env, &b, &id, &images, &["--console-socket", sock_arg]);
        let master = h.join().unwrap();
        assert_eq!(out.code, 0, "{out:?}");
        master.expect("pty master from restore")
    });
    let n = count(&env, &id);
    assert!(wait_count_above(&env, &id, n));
    drop(restored);
    env.paddock(&["delete", "-f", &id]).success();
    env.assert_clean();
}

#[test]
fn foreground_restore_waits_then_deletes() {
    require_criu!();
    let env = Env::new();
    let b = counter_bundle(&env);
    let id = env.id("ckfg");
    run_detached(&env, &b, &id, &[]);
    assert!(wait_count_above(&env, &id, 2));
    let images = env.dir.join("img");
    let work = env.dir.join("work");
    let work_arg = ["--work-path", work.to_str().unwrap()];
    checkpoint(&env, &id, &images, &work_arg).success();
    assert!(work.join("dump.log").exists(), "criu's log in --work-path");
    let args = [
        "restore",
        "-b",
        b.dir.to_str().unwrap(),
        "--image-path",
        images.to_str().unwrap(),
        "--work-path",
        work.to_str().unwrap(),
        &id,
    ];
    let mut child = env.spawn(&args, |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    assert!(wait_for(
        || env.paddock(&["state", &id]).ok() && env.status(&id) == "running"
    ));
    let n = count(&env, &id);
    assert!(wait_count_above(&env, &id, n));
    env.paddock(&["kill", &id, "KILL"]).success();
    // As run: the foreground restore reports the exit and deletes the container.
    let status = child.wait().unwrap();
    assert_eq!(common::code_of(status), 137);
    env.paddock(&["state", &id]).fails_with_one_line();
    env.assert_clean();
}
