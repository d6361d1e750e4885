//! config.json mounts, root options and propagation.
mod common;

use std::fs;

use common::{bind, Env, HostTmpfs};
use serde_json::json;

/// The mountinfo line for mount point `dst` in a container's output.
fn line_for<'a>(mountinfo: &'a str, dst: &str) -> &'a str {
    mountinfo
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(dst))
        .unwrap_or_else(|| panic!("{dst} not mounted:\n{mountinfo}"))
}

#[test]
fn ro_bind_mount_refuses_writes() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("in"), "x").unwrap();
    let mut b = env.bundle(&[]);
    b.add_mount(bind(&src, "/mnt/ro", &["ro"]));
    let out = env.run_sh(
        &mut b,
        "cat /mnt/ro/in; touch /mnt/ro/new 2>/dev/null && echo WROTE; true",
    );
    assert_eq!(out.stdout, "x");
    assert!(!src.join("new").exists());
}

#[test]
fn file_bind_mount() {
    let env = Env::new();
    let f = env.dir.join("hello.txt");
    fs::write(&f, "hello file").unwrap();
    let mut b = env.bundle(&[]);
    b.add_mount(bind(&f, "/etc/hello.txt", &["ro"]));
    let out = env.run_args(&mut b, &["cat", "/etc/hello.txt"]);
    assert_eq!(out.stdout, "hello file");
}

#[test]
fn tmpfs_mount_honours_size_and_mode() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.add_mount(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "size=1m", "mode=1770"]
    }));
    let out = env.run_sh(&mut b, "stat -c %a /scratch; cat /proc/self/mountinfo");
    let (mode, info) = out.stdout.split_once('\n').unwrap();
    assert_eq!(mode, "1770");
    let l = line_for(info, "/scratch");
    assert!(l.contains("size=1024k"), "{l}");
    assert!(l.contains("nosuid"), "{l}");
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    let env = Env::new();
    let src = env.mkdir("tree");
    let sub = src.join("sub");
    let m = HostTmpfs::new(&sub, nix::mount::MsFlags::empty());
    fs::write(sub.join("marker"), "deep").unwrap();
    let mut b = env.bundle(&[]);
    b.add_mount(json!({
        "destination": "/r", "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind"]
    }));
    b.add_mount(bind(&src, "/p", &[]));
    let out = env.run_sh(&mut b, "cat /r/sub/marker; echo; ls /p/sub | wc -l");
    assert_eq!(out.stdout, "deep\n0\n");
    drop(m);
}

#[test]
fn bind_source_relative_to_the_bundle() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    fs::create_dir(b.dir.join("data")).unwrap();
    fs::write(b.dir.join("data/f"), "relative").unwrap();
    b.add_mount(
        json!({"destination": "/rel", "type": "bind", "source": "data", "options": ["bind"]}),
    );
    let out = env.run_args(&mut b, &["cat", "/rel/f"]);
    assert_eq!(out.stdout, "relative");
}

#[test]
fn propagation_options_shared_and_private() {
    let env = Env::new();
    let src = env.mkdir("prop");
    let mut b = env.bundle(&[]);
    b.add_mount(bind(&src, "/shared", &["rshared"]));
    b.add_mount(bind(&src, "/private", &["rprivate"]));
    let out = env.run_args(&mut b, &["cat", "/proc/self/mountinfo"]);
    assert!(
        line_for(&out.stdout, "/shared").contains(" shared:"),
        "{out:?}"
    );
    let p = line_for(&out.stdout, "/private");
    assert!(!p.contains("shared:") && !p.contains("master:"), "{p}");
}

#[test]
fn rootfs_propagation_shared() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| c["linux"]["rootfsPropagation"] = "shared".into());
    let out = env.run_args(&mut b, &["cat", "/proc/self/mountinfo"]);
    assert!(line_for(&out.stdout, "/").contains(" shared:"), "{out:?}");
}

#[test]
fn readonly_root_refuses_writes() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| c["root"]["readonly"] = true.into());
    let out = env.run_sh(&mut b, "touch /x 2>/dev/null && echo WROTE; echo done");
    assert_eq!(out.stdout, "done\n");
    assert!(!b.rootfs.join("x").exists());
}

#[test]
fn writable_root_accepts_writes() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| c["root"]["readonly"] = false.into());
    env.run_args(&mut b, &["touch", "/x"]);
    assert!(b.rootfs.join("x").exists());
}

#[test]
fn no_pivot_runs_the_container() {
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        "ls /bin/busybox; cat /etc/hostname 2>/dev/null; echo ok",
    ]);
    let id = env.id("nopivot");
    let out = env
        .paddock(&["run", "--no-pivot", "-b", b.dir.to_str().unwrap(), &id])
        .success();
    assert!(
        out.stdout.starts_with("/bin/busybox\n") && out.stdout.ends_with("ok\n"),
        "{out:?}"
    );
}

#[test]
fn mount_destination_through_symlink_stays_in_rootfs() {
    let env = Env::new();
    let outside = env.mkdir("outside");
    let mut b = env.bundle(&[]);
    let target = format!("../../../../../../../..{}", outside.display());
    std::os::unix::fs::symlink(&target, b.rootfs.join("data")).unwrap();
    std::os::unix::fs::symlink(outside.to_str().unwrap(), b.rootfs.join("abs")).unwrap();
    b.add_mount(json!({"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs"}));
    b.add_mount(json!({"destination": "/abs/sub2", "type": "tmpfs", "source": "tmpfs"}));
    let id = env.id("symlink");
    let out = env.run(&b, &id);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "created outside: {out:?}"
    );
    if out.ok() {
        assert!(b
            .rootfs
            .join(outside.strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
    } else {
        assert_eq!(out.code, 1, "{out:?}");
    }
}

#[test]
fn proc_and_sys_are_mounted() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_args(&mut b, &["cat", "/proc/self/mountinfo"]);
    assert!(
        line_for(&out.stdout, "/proc").contains(" - proc "),
        "{out:?}"
    );
    assert!(
        line_for(&out.stdout, "/sys").contains(" - sysfs "),
        "{out:?}"
    );
}

#[test]
fn sys_fs_cgroup_is_read_only() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let script = "mkdir /sys/fs/cgroup/x 2>/dev/null && echo LEAK top; \
                  for d in /sys/fs/cgroup/*/; do mkdir $d/x 2>/dev/null && echo LEAK $d; done; echo done";
    let out = env.run_sh(&mut b, script);
    assert_eq!(out.stdout, "done\n");
}
