//! AppArmor where the kernel has it (the pure v2 guest: `make test-v2`): a loaded
//! profile named by process.apparmorProfile, `exec --apparmor` or a process.json
//! confines the process from its execve on, exec takes the config's profile unless told
//! another, and a profile that is not loaded fails create and exec as in runc, leaving
//! nothing. Side by side with Debian's runc (1.1.5 does here what 1.5 does). Where
//! AppArmor is not enabled, as on the v1 host, each test skips with a note.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::parity::{assert_same, side_by_side, Rt};
use common::{Bundle, Env, Out};
use serde_json::json;

/// What a probe prints: the process's AppArmor label, then whether it could read
/// /etc/passwd (the one thing the test profile denies).
const PROBE: &str = "cat /proc/self/attr/current; cat /etc/passwd >/dev/null 2>&1; echo read=$?";
const UNCONFINED: &str = "unconfined\nread=0\n";

fn apparmor(test: &str) -> bool {
    let on = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
        && Path::new("/sys/kernel/security/apparmor").exists();
    if !on {
        eprintln!(
            "{test}: skipped, AppArmor is not enabled on this host (run it with make test-v2)"
        );
    }
    on
}

/// A profile loaded for one test and unloaded when dropped: everything is allowed
/// but reading /etc/passwd.
struct Profile {
    name: String,
    file: PathBuf,
}

impl Profile {
    fn load(env: &Env, tag: &str) -> Profile {
        let name = format!("paddock-test-{tag}-{}", std::process::id());
        let file = env.dir.join(format!("{name}.profile"));
        let rules = [
            "file,",
            "deny /etc/passwd r,",
            "capability,",
            "signal,",
            "ptrace,",
            "unix,",
            "network,",
            "mount,",
            "umount,",
            "pivot_root,",
        ];
        fs::write(
            &file,
            format!(
                "profile {name} flags=(attach_disconnected,mediate_deleted) {{\n  {}\n}}\n",
                rules.join("\n  ")
            ),
        )
        .unwrap();
        parser(&["-r", "-K"], &file);
        Profile { name, file }
    }

    /// The probe's output in this profile.
    fn confined(&self) -> String {
        format!("{} (enforce)\nread=1\n", self.name)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        parser(&["-R", "-K"], &self.file);
    }
}

fn parser(flags: &[&str], file: &Path) {
    let out = Command::new("apparmor_parser")
        .args(flags)
        .arg(file)
        .output()
        .expect("apparmor_parser (Debian's apparmor package) must be installed");
    assert!(out.status.success(), "apparmor_parser {flags:?}: {out:?}");
}

/// A `sleep` container per runtime, `f` run against each, then both removed.
fn with_running<T>(env: &Env, b: &Bundle, f: impl Fn(Rt, &str) -> T) -> [T; 2] {
    side_by_side(|rt| {
        let id = env.id(rt.name());
        let out = env.rt(rt, &["run", "-d", "-b", b.dir.to_str().unwrap(), &id]);
        assert!(out.ok(), "{rt:?} run -d: {out:?}");
        let r = f(rt, &id);
        env.rt(rt, &["delete", "--force", &id]);
        r
    })
}

/// `rt exec [pre..] ID sh -c PROBE`.
fn probe(env: &Env, rt: Rt, pre: &[&str], id: &str) -> Out {
    let mut args = vec!["exec"];
    args.extend_from_slice(pre);
    args.extend_from_slice(&[id, "sh", "-c", PROBE]);
    env.rt(rt, &args)
}

#[test]
fn config_profile_confines_the_container() {
    if !apparmor("config_profile_confines_the_container") {
        return;
    }
    let env = Env::new();
    let p = Profile::load(&env, "run");
    let mut b = env.bundle(&["sh", "-c", PROBE]);
    b.config(|c| c["process"]["apparmorProfile"] = p.name.clone().into());
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("run with process.apparmorProfile", &outs);
    assert_eq!(outs[1].stdout, p.confined(), "{outs:?}");

    // Without the field the container is unconfined (the runtime itself is).
    b.config(|c| c["process"]["apparmorProfile"] = "".into());
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("run with an empty process.apparmorProfile", &outs);
    assert_eq!(outs[1].stdout, UNCONFINED, "{outs:?}");
}

#[test]
fn exec_takes_the_config_profile_unless_the_flag_names_one() {
    if !apparmor("exec_takes_the_config_profile_unless_the_flag_names_one") {
        return;
    }
    let env = Env::new();
    let p = Profile::load(&env, "exec");
    let mut b = env.bundle(&["sleep", "1000"]);
    let cases = [
        (vec![], UNCONFINED.to_string()),
        (vec!["--apparmor", p.name.as_str()], p.confined()),
    ];
    let check = |what: &str, b: &Bundle, cases: &[(Vec<&str>, String)]| {
        let outs = with_running(&env, b, |rt, id| {
            cases
                .iter()
                .map(|(pre, _)| probe(&env, rt, pre, id))
                .collect::<Vec<_>>()
        });
        for (i, (pre, want)) in cases.iter().enumerate() {
            let pair = [outs[0][i].clone(), outs[1][i].clone()];
            assert_same(&format!("{what}: exec {pre:?}"), &pair);
            assert_eq!(&pair[1].stdout, want, "{what}: exec {pre:?}: {pair:?}");
        }
    };
    check("no profile in the config", &b, &cases);

    // A process.json's apparmorProfile is applied as the flag is.
    let process = env.dir.join("process.json");
    let json = json!({
        "args": ["sh", "-c", PROBE],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "apparmorProfile": p.name,
    });
    fs::write(&process, json.to_string()).unwrap();
    let outs = with_running(&env, &b, |rt, id| {
        env.rt(rt, &["exec", "--process", process.to_str().unwrap(), id])
    });
    assert_same("exec --process with apparmorProfile", &outs);
    assert_eq!(outs[1].stdout, p.confined(), "{outs:?}");

    // The config's profile is exec's too; --apparmor replaces it.
    b.config(|c| c["process"]["apparmorProfile"] = p.name.clone().into());
    let cases = [
        (vec![], p.confined()),
        (vec!["--apparmor", "unconfined"], UNCONFINED.to_string()),
    ];
    check("the config's profile", &b, &cases);
}

#[test]
fn a_profile_not_loaded_fails_create_and_exec() {
    if !apparmor("a_profile_not_loaded_fails_create_and_exec") {
        return;
    }
    let env = Env::new();
    let missing = format!("paddock-test-not-loaded-{}", std::process::id());
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["process"]["apparmorProfile"] = missing.clone().into());
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        let out = env.rt(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
        assert!(
            !env.rt_root(rt).join(&id).exists(),
            "{rt:?} left its state: {out:?}"
        );
        out
    });
    assert_same("create with a profile not loaded", &outs);
    let [runc, paddock] = outs;
    assert!(
        runc.stderr.contains("apparmor failed to apply profile"),
        "{runc:?}"
    );
    let paddock = paddock.fails_with_one_line();
    assert!(
        paddock.stderr.contains(&format!(
            "apparmor failed to apply profile {missing:?}: write /proc/thread-self/attr/"
        )),
        "{paddock:?}"
    );

    // exec: runc's code for its own failures, and the container is as it was.
    b.config(|c| c["process"]["apparmorProfile"] = "".into());
    b.args(&["sleep", "1000"]);
    let outs = with_running(&env, &b, |rt, id| {
        let failed = env.rt(rt, &["exec", "--apparmor", &missing, id, "true"]);
        let ps = env.rt(rt, &["exec", id, "ps", "-o", "comm"]);
        (failed, ps)
    });
    let [(runc, runc_ps), (paddock, paddock_ps)] = outs;
    assert_same(
        "exec --apparmor with a profile not loaded",
        &[runc.clone(), paddock.clone()],
    );
    assert_eq!(paddock.code, 255, "{paddock:?}");
    assert!(
        runc.stderr.contains("apparmor failed to apply profile"),
        "{runc:?}"
    );
    assert_eq!(paddock.stderr.lines().count(), 1, "{paddock:?}");
    assert!(
        paddock.stderr.starts_with("exec failed: ")
            && paddock
                .stderr
                .contains(&format!("apparmor failed to apply profile {missing:?}")),
        "{paddock:?}"
    );
    assert_same("ps after the failed exec", &[runc_ps, paddock_ps.clone()]);
    assert_eq!(paddock_ps.stdout, "COMMAND\nsleep\nps\n");
}
