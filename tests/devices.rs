//! /dev: default device nodes, links, linux.devices, and symlinks in the image.
mod common;

use std::fs;

use common::Env;
use serde_json::json;

#[test]
fn default_devices_have_the_right_numbers() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let devs = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ];
    let script: String = devs
        .iter()
        .map(|(d, _)| format!("stat -c '%n %F %t:%T' /dev/{d}; "))
        .collect();
    let out = env.run_sh(&mut b, &script);
    let lines: Vec<_> = out.stdout.lines().collect();
    assert_eq!(lines.len(), devs.len(), "{out:?}");
    for ((d, nums), line) in devs.iter().zip(lines) {
        assert_eq!(line, format!("/dev/{d} character special file {nums}"));
    }
}

#[test]
fn dev_null_is_usable() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(&mut b, "echo x > /dev/null && head -c 4 /dev/zero | wc -c");
    assert_eq!(out.stdout.trim(), "4");
}

#[test]
fn ptmx_and_fd_links_exist() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(
        &mut b,
        "for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done",
    );
    let want = "pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n";
    assert_eq!(out.stdout, want);
}

#[test]
fn dev_pts_shm_and_mqueue_are_mounted() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_args(&mut b, &["cat", "/proc/self/mountinfo"]);
    for (dst, fs) in [
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        let found = out
            .stdout
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some(dst) && l.contains(&format!(" - {fs} ")));
        assert!(found, "{dst} ({fs}) missing: {}", out.stdout);
    }
}

#[test]
fn linux_devices_adds_a_node_with_mode_and_owner() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.push(
        |c| &mut c["linux"]["devices"],
        json!({"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
               "fileMode": 384, "uid": 1000, "gid": 1000}),
    );
    b.push(
        |c| &mut c["linux"]["devices"],
        json!({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}),
    );
    let out = env.run_sh(
        &mut b,
        "stat -c '%F %t:%T %a %u %g' /dev/mynull; stat -c '%F %t:%T' /dev/fuse",
    );
    assert_eq!(
        out.stdout,
        "character special file 1:3 600 1000 1000\ncharacter special file a:e5\n"
    );
}

#[test]
fn dev_symlink_in_image_does_not_escape_rootfs() {
    let env = Env::new();
    let outside = env.mkdir("outdev");
    let mut b = env.bundle(&["ls", "/dev"]);
    fs::remove_dir(b.rootfs.join("dev")).unwrap();
    let target = format!("../../../../../../../..{}", outside.display());
    std::os::unix::fs::symlink(&target, b.rootfs.join("dev")).unwrap();
    b.push(
        |c| &mut c["linux"]["devices"],
        json!({"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3}),
    );
    let id = env.id("devlink");
    let out = env.run(&b, &id);
    let left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        left.is_empty(),
        "created outside the rootfs: {left:?} ({out:?})"
    );
    assert!(out.code == 0 || out.code == 1, "{out:?}");
}

/// As runc 1.5 on v1 and v2: a rule that takes access out of an earlier wildcard
/// ("punch a hole") is refused before anything exists.
#[test]
fn a_deny_inside_an_allowed_wildcard_is_refused() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| {
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwm"}
        ])
    });
    let id = env.id("hole");
    let out = env.run(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("linux.resources.devices"), "{out:?}");
    env.assert_clean();
}
