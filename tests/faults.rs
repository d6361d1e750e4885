//! A runtime process killed half-way must leave something `delete --force` can clean.
mod common;

use std::process::Stdio;

use common::Env;
use serde_json::json;

#[test]
fn sigkill_of_create_mid_way_is_cleaned_by_delete_force() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    let marker = env.dir.join("prestart-started");
    b.push(
        |c| &mut c["hooks"]["prestart"],
        json!({"path": "/bin/sh",
               "args": ["sh", "-c", format!("touch {}; sleep 3", marker.display())],
               "env": ["PATH=/usr/bin:/bin"]}),
    );
    let id = env.id("killed");
    let mut child = env.spawn(&["create", "-b", b.dir.to_str().unwrap(), &id], |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    assert!(
        common::wait_for(|| marker.exists()),
        "prestart hook never ran"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    env.paddock(&["delete", "--force", &id]).success();
    assert!(!env.paddock(&["state", &id]).ok());
    // The orphaned hook (sleep 3) may still be finishing; wait for it, bounded.
    common::wait_for(|| env.leftovers().is_empty());
    env.assert_clean();
}

#[test]
fn sigkill_of_create_after_state_dir_is_cleaned_by_delete_force() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    let marker = env.dir.join("create-runtime-started");
    b.push(
        |c| &mut c["hooks"]["createRuntime"],
        json!({"path": "/bin/sh",
               "args": ["sh", "-c", format!("touch {}; sleep 3", marker.display())],
               "env": ["PATH=/usr/bin:/bin"]}),
    );
    let id = env.id("killed2");
    let mut child = env.spawn(&["create", "-b", b.dir.to_str().unwrap(), &id], |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    assert!(
        common::wait_for(|| marker.exists()),
        "createRuntime hook never ran"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let st = env.paddock(&["state", &id]);
    assert!(st.ok() || st.code == 1, "state after kill: {st:?}");
    env.paddock(&["delete", "--force", &id]).success();
    common::wait_for(|| env.leftovers().is_empty());
    env.assert_clean();
}

#[test]
fn sigkill_of_foreground_run_then_delete_force_cleans_up() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("runkill");
    let mut child = env.spawn(&["run", "-b", b.dir.to_str().unwrap(), &id], |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    assert!(common::wait_for(|| env
        .paddock(&["state", &id])
        .stdout
        .contains("\"running\"")));
    child.kill().unwrap();
    child.wait().unwrap();
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}
