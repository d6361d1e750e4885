//! Bad configs, IDs and arguments: exit 1, one stderr line naming the problem,
//! and nothing left behind (state, cgroup, mount, process).
mod common;

use std::fs;

use common::{Bundle, Env};
use serde_json::json;

/// `create` must fail with one line containing `needle` and leave the host clean.
#[track_caller]
fn create_fails(env: &Env, b: &Bundle, needle: &str) {
    let id = env.id("bad");
    let out = env.create(b, &id).fails_with_one_line();
    assert!(out.stderr.contains(needle), "want {needle:?}: {out:?}");
    env.assert_clean();
}

#[test]
fn malformed_json_is_rejected() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    fs::write(b.dir.join("config.json"), "{\"ociVersion\": ").unwrap();
    create_fails(&env, &b, "config.json");
}

#[test]
fn wrong_type_names_the_field() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["process"]["user"]["uid"] = "x".into());
    create_fails(&env, &b, "process.user.uid");
}

#[test]
fn unsupported_oci_version_is_rejected() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["ociVersion"] = "9.9".into());
    create_fails(&env, &b, "ociVersion");
}

#[test]
fn missing_rootfs_is_rejected() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    fs::remove_dir_all(&b.rootfs).unwrap();
    create_fails(&env, &b, "root");
}

#[test]
fn overlapping_uid_mappings_are_rejected() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.set_namespace(json!({"type": "user"}));
    b.config(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 1000},
            {"containerID": 500, "hostID": 200000, "size": 1000}
        ]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    create_fails(&env, &b, "uidMappings");
}

#[test]
fn invalid_ids_are_rejected() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    // One argv string may not exceed 128 KiB (MAX_ARG_STRLEN), so "huge" stays below that.
    let huge = "a".repeat(100_000);
    for id in ["..", ".", "a/b", "../escape", "", "a b", huge.as_str()] {
        let out = env.create(&b, id).fails_with_one_line();
        assert!(out.stderr.contains("container ID"), "{id:.20}: {out:?}");
        assert!(
            out.stderr.len() < 1000,
            "error line too long: {} bytes",
            out.stderr.len()
        );
        for cmd in ["state", "start", "kill", "delete"] {
            env.paddock(&[cmd, id]).fails_with_one_line();
        }
    }
    assert!(!env.dir.join("escape").exists());
    env.assert_clean();
}

#[test]
fn missing_executable_is_rejected() {
    let env = Env::new();
    let b = env.bundle(&["no-such-binary"]);
    create_fails(&env, &b, "no-such-binary");
}

#[test]
fn non_executable_file_is_rejected() {
    let env = Env::new();
    let b = env.bundle(&["/etc/passwd"]);
    create_fails(&env, &b, "/etc/passwd");
}

#[test]
fn unknown_flag_is_rejected() {
    let env = Env::new();
    let out = env
        .paddock(&["create", "--bogus-flag", "x"])
        .fails_with_one_line();
    assert!(out.stderr.contains("--bogus-flag"), "{out:?}");
    // An unknown command exits 3, as runc's.
    let out = env.paddock(&["frobnicate"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("frobnicate"), "{out:?}");
    env.assert_clean();
}

#[test]
fn kill_with_unknown_signal_is_rejected() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("sig");
    env.create(&b, &id).success();
    for sig in ["NOPE", "SIGFOO"] {
        let out = env.paddock(&["kill", &id, sig]).fails_with_one_line();
        assert!(out.stderr.contains(sig), "{out:?}");
    }
    // As runc: any number is passed to kill(2), which refuses 65; 0 checks liveness.
    let out = env.paddock(&["kill", &id, "65"]).fails_with_one_line();
    assert!(out.stderr.contains("invalid argument"), "{out:?}");
    env.paddock(&["kill", &id, "0"]).success();
    assert_eq!(env.status(&id), "created");
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

#[test]
fn commands_on_a_nonexistent_container_fail() {
    let env = Env::new();
    let id = env.id("ghost");
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let out = env.paddock(&args).fails_with_one_line();
        assert!(
            out.stderr.contains("container does not exist"),
            "{args:?}: {out:?}"
        );
    }
    // As runc: forcing the delete of a container that is gone succeeds quietly.
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

#[test]
fn bundle_without_config_is_rejected() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    fs::remove_file(b.dir.join("config.json")).unwrap();
    create_fails(&env, &b, "config.json");
}

/// Without a mount namespace masks would cover host paths (runc refuses them too).
#[test]
fn masked_paths_without_mount_namespace_are_rejected() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.remove_namespace("mount");
    create_fails(&env, &b, "maskedPaths");
}
