//! The sealed exec tail (src/linux/exeseal.rs, tail/tail.rs): which processes end with
//! it, that its memfd can be neither written nor read by the container, what it reports
//! when the program cannot be exec'd, and that a command that re-executes itself from a
//! sealed paddock instead gives its warnings once.
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{Bundle, Env};
use serde_json::json;

const TAIL_EXE: &str = "/memfd:paddock-init (deleted)";

fn exe_of(pid: i64) -> String {
    fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn allow_all_filter(b: &mut Bundle) {
    b.config(|c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"}));
}

/// A file the kernel refuses to exec (ENOEXEC) that every earlier check accepts.
fn garbage_program(b: &Bundle) {
    let p = b.rootfs.join("garbage");
    fs::write(&p, b"not a program\n\x01\x02").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn created_init(env: &Env, b: &Bundle, id: &str) -> i64 {
    env.create(b, id).success();
    env.state(id)["pid"].as_i64().unwrap()
}

#[test]
fn init_without_a_filter_waits_for_start_in_the_sealed_tail() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("tail");
    let pid = created_init(&env, &b, &id);
    assert_eq!(exe_of(pid), TAIL_EXE);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"paddock-init\0"), "{cmdline:?}");
    // Sealed, and execute-only: no write, and no read for a user without DAC capabilities.
    let mode = fs::metadata(format!("/proc/{pid}/exe"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o111);
    let w = fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/{pid}/exe"));
    assert!(w.is_err(), "opened the tail for writing");
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
}

#[test]
fn the_tail_of_a_non_root_process_is_not_dumpable_while_it_waits() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let id = env.id("nodump");
    let pid = created_init(&env, &b, &id);
    assert_eq!(exe_of(pid), TAIL_EXE);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains("\nUid:\t1000\t1000\t1000\t1000\n"),
        "{status}"
    );
    // A dumpable process's /proc files belong to its user; a non-dumpable one's to root.
    let environ = fs::metadata(format!("/proc/{pid}/environ")).unwrap();
    assert_eq!(environ.uid(), 0, "the waiting tail is dumpable");
    env.paddock(&["delete", "-f", &id]).success();
}

#[test]
fn a_seccomp_filter_keeps_the_whole_of_paddock_sealed_to_the_end() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    allow_all_filter(&mut b);
    let id = env.id("sealed");
    let pid = created_init(&env, &b, &id);
    let exe = exe_of(pid);
    assert!(
        exe == "/paddock" || exe == "/memfd:paddock (deleted)",
        "init runs {exe}"
    );
    env.paddock(&["delete", "-f", &id]).success();
}

#[test]
fn the_program_runs_with_its_own_argv_and_env_after_the_tail() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "A=1", "B=two words"]));
    let out = env.run_args(&mut b, &["sh", "-c", "echo \"$0|$1|$A|$B\"", "x y", "z"]);
    assert_eq!(out.stdout, "x y|z|1|two words\n");
}

#[test]
fn run_reports_a_program_the_kernel_cannot_exec_with_or_without_the_tail() {
    for filtered in [false, true] {
        let env = Env::new();
        let mut b = env.bundle(&["/garbage"]);
        garbage_program(&b);
        if filtered {
            allow_all_filter(&mut b);
        }
        let out = env.run(&b, &env.id("garbage"));
        assert_eq!(out.code, 255, "{out:?}");
        assert_eq!(
            out.stderr, "paddock init: exec /garbage: ENOEXEC: Exec format error\n",
            "filtered: {filtered}"
        );
    }
}

#[test]
fn exec_reports_a_program_the_kernel_cannot_exec_with_or_without_the_tail() {
    for filtered in [false, true] {
        let env = Env::new();
        let mut b = env.bundle(&["sleep", "60"]);
        garbage_program(&b);
        if filtered {
            allow_all_filter(&mut b);
        }
        let id = env.id("exec-garbage");
        env.paddock(&["run", "-d", "-b", b.dir.to_str().unwrap(), &id])
            .success();
        let out = env.paddock(&["exec", &id, "/garbage"]);
        assert_eq!(out.code, 255, "{out:?}");
        assert_eq!(
            out.stderr, "exec failed: exec /garbage: ENOEXEC: Exec format error\n",
            "filtered: {filtered}"
        );
        // The tail escapes the message it sends as JSON: quotes, backslashes, controls.
        let odd = "gar\"ba\\ge\tx";
        fs::copy(b.rootfs.join("garbage"), b.rootfs.join(odd)).unwrap();
        let out = env.paddock(&["exec", &id, &format!("/{odd}")]);
        assert_eq!(
            out.stderr,
            format!("exec failed: exec /{odd}: ENOEXEC: Exec format error\n"),
            "filtered: {filtered}"
        );
        let ok = env.paddock(&["exec", &id, "sh", "-c", "echo $0", "fine"]);
        assert_eq!(ok.success().stdout, "fine\n");
        env.paddock(&["delete", "-f", &id]).success();
    }
}

#[test]
fn a_warning_is_given_once_also_when_paddock_re_executes_itself() {
    for filtered in [false, true] {
        let env = Env::new();
        let mut b = env.bundle(&["true"]);
        // An ambient capability outside the permitted set: runc warns and goes on.
        b.config(|c| c["process"]["capabilities"]["ambient"] = json!(["CAP_SYS_TIME"]));
        if filtered {
            allow_all_filter(&mut b);
        }
        let out = env.run(&b, &env.id("warn")).success();
        let warning = "can't raise ambient capability CAP_SYS_TIME";
        assert_eq!(
            out.stderr.matches(warning).count(),
            1,
            "filtered: {filtered}: {out:?}"
        );
    }
}
