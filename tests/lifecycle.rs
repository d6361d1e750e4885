//! create/start/state/kill/delete/run/list and the CLI's output contracts.
mod common;

use std::fs;
use std::process::Stdio;

use common::{code_of, Env};
use serde_json::Value;

fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let ok_date = digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    let ok_time = b[10] == b'T' && digits(11..13) && b[13] == b':' && digits(14..16);
    let ok_secs = b[16] == b':' && digits(17..19);
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    let ok_zone = rest == "Z"
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':');
    ok_date && ok_time && ok_secs && ok_zone
}

#[test]
fn create_start_kill_delete_walks_through_every_state() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("life");
    env.create(&b, &id).success();
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0, "{st}");
    env.paddock(&["start", &id]).success();
    assert_eq!(env.status(&id), "running");
    env.paddock(&["kill", &id, "KILL"]).success();
    assert!(env.wait_status(&id, "stopped"));
    assert_eq!(env.state(&id)["pid"], 0);
    env.paddock(&["delete", &id]).success();
    let out = env.paddock(&["state", &id]).fails_with_one_line();
    assert!(out.stderr.contains("container does not exist"), "{out:?}");
}

#[test]
fn run_exits_with_the_container_exit_code() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "exit 3"]);
    let out = env.run(&b, &env.id("exit3"));
    assert_eq!(out.code, 3, "{out:?}");
}

#[test]
fn run_of_a_process_killed_by_sigkill_exits_137() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("sig");
    let child = env.spawn(&["run", "-b", b.dir.to_str().unwrap(), &id], |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    assert!(common::wait_for(|| env
        .paddock(&["state", &id])
        .stdout
        .contains("\"running\"")));
    env.paddock(&["kill", &id, "9"]).success();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(code_of(status), 137);
}

#[test]
fn kill_accepts_kill_sigkill_and_9() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    for sig in ["KILL", "SIGKILL", "9"] {
        let id = env.id("k");
        env.create(&b, &id).success();
        env.paddock(&["start", &id]).success();
        env.paddock(&["kill", &id, sig]).success();
        assert!(env.wait_status(&id, "stopped"), "signal {sig}");
        env.paddock(&["delete", &id]).success();
    }
}

#[test]
fn kill_all_signals_every_process_in_the_container() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let id = env.id("kall");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    env.paddock(&["kill", "--all", &id, "KILL"]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
}

#[test]
fn delete_of_running_container_needs_force() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("del");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    let out = env.paddock(&["delete", &id]).fails_with_one_line();
    assert!(out.stderr.contains("running"), "{out:?}");
    assert_eq!(env.status(&id), "running");
    env.paddock(&["delete", "--force", &id]).success();
    assert!(!env.paddock(&["state", &id]).ok());
}

#[test]
fn start_of_stopped_container_fails() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("stopped");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["start", &id]).fails_with_one_line();
    env.paddock(&["delete", &id]).success();
}

#[test]
fn double_create_fails_and_keeps_the_first_container() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("dup");
    env.create(&b, &id).success();
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(
        out.stderr.contains("container ID already exists"),
        "{out:?}"
    );
    assert_eq!(env.status(&id), "created");
    env.paddock(&["delete", "--force", &id]).success();
}

#[test]
fn list_prints_table_json_and_quiet() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let (a, c) = (env.id("lista"), env.id("listb"));
    env.create(&b, &a).success();
    env.create(&b, &c).success();
    let table = env.paddock(&["list"]).success().stdout;
    let mut lines = table.lines();
    let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for r in &rows {
        assert!(r[0] == a || r[0] == c, "{table}");
        assert_eq!(r[2], "created");
        assert_eq!(r[3], b.dir.to_str().unwrap());
        assert_eq!(r[5], "root");
    }
    let json: Value =
        serde_json::from_str(&env.paddock(&["list", "--format", "json"]).success().stdout).unwrap();
    let ids: Vec<_> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.as_str()) && ids.contains(&c.as_str()));
    let quiet = env.paddock(&["list", "-q"]).success().stdout;
    let mut q: Vec<_> = quiet.lines().collect();
    q.sort();
    let mut want = vec![a.as_str(), c.as_str()];
    want.sort();
    assert_eq!(q, want);
    env.paddock(&["delete", "--force", &a]).success();
    env.paddock(&["delete", "--force", &c]).success();
    assert_eq!(env.paddock(&["list", "-q"]).success().stdout, "");
}

#[test]
fn state_prints_only_json_with_all_fields() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("st");
    env.create(&b, &id).success();
    let out = env.paddock(&["state", &id]).success();
    assert_eq!(out.stderr, "");
    let st: Value = serde_json::from_str(&out.stdout).unwrap();
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "created",
        "owner",
    ] {
        assert!(!st[k].is_null(), "missing {k}: {st}");
    }
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.dir.to_str().unwrap());
    assert!(is_rfc3339(st["created"].as_str().unwrap()), "{st}");
    assert_eq!(st["owner"], "root");
    env.paddock(&["delete", "--force", &id]).success();
}

#[test]
fn pid_file_holds_digits_only() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("pidf");
    let pf = env.dir.join("pidfile");
    let bdir = b.dir.to_str().unwrap();
    env.paddock(&[
        "create",
        "-b",
        bdir,
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
    ])
    .success();
    let text = fs::read_to_string(&pf).unwrap();
    assert!(
        !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()),
        "{text:?}"
    );
    assert_eq!(
        text.parse::<i64>().unwrap(),
        env.state(&id)["pid"].as_i64().unwrap()
    );
    env.paddock(&["delete", "--force", &id]).success();
}

#[test]
fn log_json_writes_one_error_line() {
    let env = Env::new();
    let log = env.dir.join("log.json");
    let out = env
        .paddock(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "nope",
        ])
        .fails_with_one_line();
    assert!(out.stderr.contains("container does not exist"));
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"]
        .as_str()
        .unwrap()
        .contains("container does not exist"));
    assert!(is_rfc3339(line["time"].as_str().unwrap()), "{line}");
}

#[test]
fn closed_stderr_does_not_crash() {
    let env = Env::new();
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let mut cmd = env.cmd(&["state", "nope"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::from(w));
    let status = cmd.status().unwrap();
    assert_eq!(code_of(status), 1);
}

#[test]
fn closed_stdout_does_not_crash() {
    let env = Env::new();
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let mut cmd = env.cmd(&["--version"]);
    cmd.stdout(Stdio::from(w)).stderr(Stdio::null());
    let code = code_of(cmd.status().unwrap());
    assert!(code >= 0, "killed by signal {}", -code);
}

#[test]
fn version_names_paddock_spec_and_libseccomp() {
    let env = Env::new();
    let out = env.paddock(&["--version"]).success();
    assert!(out.stdout.contains("paddock"), "{out:?}");
    assert!(out.stdout.contains("spec: 1."), "{out:?}");
    assert!(out.stdout.contains("libseccomp: 2."), "{out:?}");
}

#[test]
fn go_style_flags_are_accepted() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("go");
    let root = format!("-root={}", env.root.display());
    let mut c = std::process::Command::new(common::bin());
    c.args([&root, "create", "-bundle", b.dir.to_str().unwrap(), &id]);
    c.stdin(Stdio::null());
    env.output(c).success();
    assert_eq!(env.status(&id), "created");
    let log = env.dir.join("log");
    let mut c = std::process::Command::new(common::bin());
    c.args(["-root", env.root.to_str().unwrap(), "--log-format", "json"]);
    c.args(["-log", log.to_str().unwrap(), "delete", "-force", &id]);
    env.output(c).success();
    assert!(!env.paddock(&["state", &id]).ok());
}
