//! OCI hooks: order, state on stdin, and what a failing hook does.
mod common;

use std::fs;
use std::path::Path;

use common::{bind, Bundle, Env};
use serde_json::{json, Value};

/// A hook that appends "<kind> <state JSON from stdin>" to `log`, using `sh` at `sh`.
fn log_hook(sh: &str, kind: &str, log: &str) -> Value {
    json!({
        "path": sh,
        "args": ["sh", "-c", format!("printf '%s %s\\n' {kind} \"$(cat)\" >> {log}")],
        "env": ["PATH=/usr/bin:/bin"]
    })
}

fn shell_hook(script: &str, timeout: Option<u64>) -> Value {
    let mut h =
        json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/bin:/bin"]});
    if let Some(t) = timeout {
        h["timeout"] = t.into();
    }
    h
}

fn add_hook(b: &mut Bundle, kind: &str, hook: Value) {
    b.push(|c| &mut c["hooks"][kind], hook);
}

/// (kind, state) per line of the hook log.
fn read_log(path: &Path) -> Vec<(String, Value)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (kind, state) = l.split_once(' ').unwrap();
            let v: Value = serde_json::from_str(state).unwrap_or_else(|e| panic!("{e}: {l}"));
            (kind.to_string(), v)
        })
        .collect()
}

#[test]
fn all_six_hooks_run_in_order_with_the_state_on_stdin() {
    let env = Env::new();
    let logdir = env.mkdir("hooklog");
    let log = logdir.join("log");
    let host_log = log.to_str().unwrap();
    let mut b = env.bundle(&["true"]);
    b.add_mount(bind(&logdir, "/hooklog", &["rw"]));
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        add_hook(&mut b, kind, log_hook("/bin/sh", kind, host_log));
    }
    add_hook(
        &mut b,
        "startContainer",
        log_hook("/bin/sh", "startContainer", "/hooklog/log"),
    );
    let id = env.id("hooks");
    env.create(&b, &id).success();
    let kinds = |l: &[(String, Value)]| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(
        kinds(&read_log(&log)),
        ["prestart", "createRuntime", "createContainer"]
    );
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
    let entries = read_log(&log);
    assert_eq!(
        kinds(&entries),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    for (kind, state) in &entries {
        assert_eq!(state["id"], id.as_str(), "{kind}: {state}");
        assert_eq!(state["bundle"], b.dir.to_str().unwrap(), "{kind}: {state}");
        assert!(state["ociVersion"].is_string(), "{kind}: {state}");
        let status = state["status"].as_str().unwrap();
        // "creating" for the create-time hooks, as runc 1.5 passes it.
        let want: &[&str] = match kind.as_str() {
            "prestart" | "createRuntime" | "createContainer" => &["creating"],
            "startContainer" => &["created"],
            "poststart" => &["running"],
            _ => &["stopped"],
        };
        assert!(want.contains(&status), "{kind}: {state}");
        if kind != "poststop" {
            assert!(state["pid"].as_i64().unwrap() > 0, "{kind}: {state}");
        }
    }
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    add_hook(&mut b, "prestart", shell_hook("exit 7", None));
    let id = env.id("prefail");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("prestart"), "{out:?}");
    env.assert_clean();
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    add_hook(&mut b, "createRuntime", shell_hook("exit 2", None));
    let id = env.id("crfail");
    env.create(&b, &id).fails_with_one_line();
    env.assert_clean();
}

/// runtime-spec 1.1+ (and runc): a failing poststart hook is an error that stops the
/// container; `delete` then cleans up.
#[test]
fn failing_poststart_hook_fails_start_and_stops_the_container() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    add_hook(&mut b, "poststart", shell_hook("exit 3", None));
    let id = env.id("postfail");
    env.create(&b, &id).success();
    let out = env.paddock(&["start", &id]).fails_with_one_line();
    assert!(out.stderr.contains("poststart"), "{out:?}");
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
    env.assert_clean();
}

#[test]
fn failing_poststop_hook_fails_delete_after_removing_everything() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    add_hook(&mut b, "poststop", shell_hook("exit 4", None));
    let id = env.id("stopfail");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "stopped"));
    // As runc 1.5: the delete fails, but the container is gone.
    let out = env.paddock(&["delete", &id]).fails_with_one_line();
    assert!(
        out.stderr
            .contains("unable to destroy container: error running poststop hook #0"),
        "{out:?}"
    );
    assert!(!env.paddock(&["state", &id]).ok());
    env.assert_clean();
}

#[test]
fn hook_timeout_fails_create() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    let script = format!("sleep 5; : {}", env.dir_slash());
    add_hook(&mut b, "prestart", shell_hook(&script, Some(1)));
    let id = env.id("timeout");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("prestart"), "{out:?}");
    env.assert_clean();
}

#[test]
fn hooks_edited_after_create_do_not_count() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let marker = env.dir.join("poststop-ran");
    let id = env.id("edit");
    env.create(&b, &id).success();
    add_hook(
        &mut b,
        "poststop",
        shell_hook(&format!("touch {}", marker.display()), None),
    );
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
    assert!(!marker.exists());
}

#[test]
fn start_container_hook_finishes_before_the_process_and_poststart() {
    let env = Env::new();
    let logdir = env.mkdir("hooklog");
    let log = logdir.join("log");
    let mut b = env.bundle(&["sh", "-c", "echo process >> /hooklog/log; sleep 100"]);
    b.add_mount(bind(&logdir, "/hooklog", &["rw"]));
    let slow = json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 1; echo startContainer >> /hooklog/log"]});
    add_hook(&mut b, "startContainer", slow);
    let post = format!("echo poststart >> {}", log.display());
    add_hook(&mut b, "poststart", shell_hook(&post, None));
    let id = env.id("order");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    assert!(common::wait_for(|| fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        == 3));
    let text = fs::read_to_string(&log).unwrap();
    let pos = |k: &str| {
        text.lines()
            .position(|l| l == k)
            .unwrap_or_else(|| panic!("{k}: {text}"))
    };
    assert!(pos("startContainer") < pos("process"), "{text}");
    assert!(pos("startContainer") < pos("poststart"), "{text}");
    env.paddock(&["delete", "--force", &id]).success();
}

/// fds a caller left open without close-on-exec reach no hook, whichever
/// process runs it (the runtime, or init in the container's namespaces).
#[test]
fn hooks_see_only_their_stdio_when_the_caller_leaks_fds() {
    let env = Env::new();
    let logdir = env.mkdir("hookfds");
    let mut b = env.bundle(&["true"]);
    b.add_mount(bind(&logdir, "/hooklog", &["rw"]));
    let kinds = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    for kind in kinds {
        // startContainer runs inside the container, the others see the host's paths.
        let dir = if kind == "startContainer" {
            "/hooklog".to_string()
        } else {
            logdir.display().to_string()
        };
        let script = format!("ls /proc/self/fd | tr '\\n' ' ' > {dir}/{kind}");
        add_hook(
            &mut b,
            kind,
            json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/bin:/bin"]}),
        );
    }
    let id = env.id("hookfds");
    let mut cmd = env.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]);
    common::leak_fds(&mut cmd, &[4, 10]);
    env.output(cmd).success();
    for kind in kinds {
        let seen = fs::read_to_string(logdir.join(kind)).unwrap_or_default();
        // ls's own directory fd is 3.
        assert_eq!(seen, "0 1 2 3 ", "{kind}");
    }
    env.assert_clean();
}
