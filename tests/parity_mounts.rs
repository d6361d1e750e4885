//! Parity suite, mounts: the same bundle through Debian's runc and through paddock,
//! compared by exit code, stdout and what the container or the host mount table shows.
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::parity::{assert_same, assert_same_code, side_by_side, Rt};
use common::{bind, Bundle, Env, HostTmpfs, Out};
use serde_json::{json, Value};

/// A bundle from `runc spec` running `sh -c script`.
fn sh_bundle(env: &Env, script: &str) -> Bundle {
    env.runc_spec_bundle(&["sh", "-c", script])
}

/// The per-mount options (mountinfo field 6) of mount point `dst` in `mountinfo`.
fn mount_options(mountinfo: &str, dst: &str) -> Vec<String> {
    let line = mountinfo
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(dst))
        .unwrap_or_else(|| panic!("{dst} not mounted:\n{mountinfo}"));
    let opts = line.split_whitespace().nth(5).unwrap();
    let mut v: Vec<String> = opts.split(',').map(str::to_string).collect();
    v.sort();
    v
}

fn with_mounts(b: &mut Bundle, f: impl FnOnce(&mut Vec<Value>)) {
    b.config(|c| f(c["mounts"].as_array_mut().unwrap()));
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_what_it_covers() {
    let env = Env::new();
    let mut b = sh_bundle(
        &env,
        "cat /etc/group | head -1; stat -c '%a %u' /etc/passwd; touch /etc/new && echo writable; \
         grep -c ' /etc ' /proc/self/mountinfo; readlink /etc/link; cat /etc/sub/deep/f; \
         stat -c '%a %u:%g' /etc/sub",
    );
    let etc = b.rootfs.join("etc");
    fs::set_permissions(etc.join("passwd"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir_all(etc.join("sub/deep")).unwrap();
    fs::write(etc.join("sub/deep/f"), "deep\n").unwrap();
    std::os::unix::fs::chown(etc.join("sub"), Some(1000), Some(2000)).unwrap();
    fs::set_permissions(etc.join("sub"), fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", etc.join("link")).unwrap();
    b.add_mount(
        json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                       "options": ["tmpcopyup", "nosuid", "size=1m"]}),
    );
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("tmpcopyup", &outs);
    let want = "root:x:0:\n640 0\nwritable\n1\n/etc/passwd\ndeep\n751 1000:2000\n";
    assert_eq!(outs[1].stdout, want);
    assert!(
        !b.rootfs.join("etc/new").exists(),
        "the write went to the tmpfs"
    );
}

#[test]
fn read_only_dev_gets_its_nodes_and_pts_first() {
    let env = Env::new();
    let mut b = sh_bundle(
        &env,
        "test -c /dev/null && echo null; test -d /dev/pts && echo pts; \
         touch /dev/x 2>/dev/null || echo read-only; echo hi > /dev/null && echo writes-null",
    );
    with_mounts(&mut b, |m| {
        let dev = m.iter_mut().find(|m| m["destination"] == "/dev").unwrap();
        dev["options"].as_array_mut().unwrap().push("ro".into());
    });
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("ro /dev", &outs);
    assert_eq!(outs[1].stdout, "null\npts\nread-only\nwrites-null\n");
}

/// A bind-mounted /dev is the caller's: neither runtime creates nodes or links in it.
#[test]
fn a_bind_mounted_dev_is_left_as_it_is() {
    let env = Env::new();
    let mut b = sh_bundle(&env, "ls /dev");
    let dev = env.mkdir("dev");
    fs::write(dev.join("keep"), "").unwrap();
    // runc needs /dev/null to set up stdio.
    let null = nix::sys::stat::SFlag::S_IFCHR;
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
    nix::sys::stat::mknod(&dev.join("null"), null, mode, libc::makedev(1, 3)).unwrap();
    with_mounts(&mut b, |m| {
        let i = m.iter().position(|m| m["destination"] == "/dev").unwrap();
        m[i] = bind(&dev, "/dev", &["rbind"]);
    });
    let listing = || {
        let mut v: Vec<String> = fs::read_dir(&dev)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let runs = side_by_side(|rt| {
        let out = env.rt_run(rt, &b);
        let left = listing();
        for name in left.iter().filter(|n| *n != "keep" && *n != "null") {
            let _ = fs::remove_dir(dev.join(name));
        }
        (out, left)
    });
    let [(runc, runc_left), (paddock, paddock_left)] = runs;
    assert_same("bind /dev", &[runc, paddock]);
    assert_eq!(runc_left, paddock_left);
    assert!(
        !paddock_left.iter().any(|n| n == "zero" || n == "ptmx"),
        "{paddock_left:?}"
    );
}

#[test]
fn tmpfs_without_mode_takes_the_mountpoint_mode() {
    let env = Env::new();
    let mut b = sh_bundle(&env, "stat -c %a /data /fresh");
    let data = b.rootfs.join("data");
    fs::create_dir_all(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o1730)).unwrap();
    b.add_mount(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
    b.add_mount(json!({"destination": "/fresh", "type": "tmpfs", "source": "tmpfs"}));
    let outs = side_by_side(|rt| {
        // Made by the first run: the second must make it too.
        let _ = fs::remove_dir(b.rootfs.join("fresh"));
        env.rt_run(rt, &b)
    });
    assert_same("tmpfs mode", &outs);
    assert_eq!(outs[1].stdout, "1730\n1777\n");
}

/// Mounts are made in config order: a bind source that exists only because an
/// earlier mount made it (a directory in a tmpfs of the container) is found.
#[test]
fn a_bind_source_made_by_an_earlier_mount_is_used() {
    let env = Env::new();
    let mut b = sh_bundle(
        &env,
        "echo hi > /a/sub/f; cat /b/f; grep -c ' /b ' /proc/self/mountinfo",
    );
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/made"), "by the first mount\n").unwrap();
    b.add_mount(json!({"destination": "/a", "type": "tmpfs", "source": "tmpfs"}));
    b.add_mount(json!({"destination": "/a/sub", "type": "tmpfs", "source": "tmpfs"}));
    // Relative to the bundle, as runc takes it.
    b.add_mount(
        json!({"destination": "/b", "type": "bind", "source": "rootfs/a/sub",
                       "options": ["rbind"]}),
    );
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("bind source from an earlier mount", &outs);
    assert_eq!(outs[1].stdout, "hi\n1\n");
    assert!(!b.rootfs.join("a/sub").exists());
}

/// runc 1.5 skips a path already masked; runc 1.1.5 mounts over it again.
#[test]
fn a_path_masked_twice_is_masked_once() {
    let env = Env::new();
    let mut b = sh_bundle(
        &env,
        "grep -c ' /proc/keys ' /proc/self/mountinfo; grep -c ' /proc/acpi ' /proc/self/mountinfo",
    );
    b.config(|c| {
        let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.extend([
            "/proc/keys".into(),
            "/proc//keys".into(),
            "/proc/acpi/".into(),
        ]);
    });
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same_code("masked twice", &outs);
    assert_eq!(outs[1].stdout, "1\n1\n");
}

#[test]
fn bind_flags_not_asked_for_are_cleared() {
    let env = Env::new();
    let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NOEXEC;
    let src = HostTmpfs::new(&env.dir.join("nosuid-src"), flags);
    let mut b = sh_bundle(&env, "cat /proc/self/mountinfo");
    b.add_mount(bind(&src.0, "/mnt/plain", &[]));
    b.add_mount(bind(&src.0, "/mnt/ro", &["ro"]));
    let outs = side_by_side(|rt| env.rt_run(rt, &b).success());
    let [runc, paddock] = outs.map(|o| {
        let plain = mount_options(&o.stdout, "/mnt/plain");
        let ro = mount_options(&o.stdout, "/mnt/ro");
        (plain, ro)
    });
    assert_eq!(runc, paddock);
    // No flag asked: the source's flags stay; "ro" asked: exactly ro.
    assert!(paddock.0.contains(&"nosuid".to_string()), "{paddock:?}");
    assert!(!paddock.1.contains(&"nosuid".to_string()), "{paddock:?}");
    assert!(paddock.1.contains(&"ro".to_string()), "{paddock:?}");
    drop(src);
}

/// In a user namespace the source's ro/nosuid/noexec are locked: asking for "nodev"
/// alone keeps them (runc 1.5 retries with the locked flags; runc 1.1.5 may fail).
#[test]
fn bind_keeps_flags_locked_on_the_source() {
    let env = Env::new();
    let flags = nix::mount::MsFlags::MS_RDONLY
        | nix::mount::MsFlags::MS_NOSUID
        | nix::mount::MsFlags::MS_NOEXEC;
    let src = HostTmpfs::new(&env.dir.join("locked-src"), flags);
    let mut b = sh_bundle(&env, "cat /mnt/locked/file; cat /proc/self/mountinfo");
    b.set_namespace(json!({"type": "user"}));
    b.config(|c| {
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    // Container root (host uid 100000) cannot create it in the host-owned rootfs.
    fs::create_dir_all(b.rootfs.join("mnt/locked")).unwrap();
    b.add_mount(bind(&src.0, "/mnt/locked", &["nodev"]));
    let out = env.rt_run(Rt::Paddock, &b).success();
    assert!(out.stdout.starts_with("host\n"), "{out:?}");
    let opts = mount_options(&out.stdout, "/mnt/locked");
    for f in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&f.to_string()), "{f} missing: {opts:?}");
    }
    // Clearing a locked flag is refused, as in runc 1.5.
    with_mounts(&mut b, |m| drop(m.pop()));
    b.add_mount(bind(&src.0, "/mnt/locked", &["rw"]));
    let out = env.rt_run(Rt::Paddock, &b);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("cannot clear locked flags"), "{out:?}");
    drop(src);
}

#[test]
fn a_relative_destination_is_taken_from_root() {
    let env = Env::new();
    let mut b = sh_bundle(&env, "grep -c ' /reldir ' /proc/self/mountinfo");
    b.add_mount(json!({"destination": "reldir", "type": "tmpfs", "source": "tmpfs"}));
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("relative destination", &outs);
    assert_eq!(outs[1].stdout, "1\n");
}

#[test]
fn only_a_procfs_may_be_bound_onto_proc() {
    let env = Env::new();
    let mut b = sh_bundle(&env, "test -r /proc/meminfo && echo proc");
    with_mounts(&mut b, |m| {
        m.retain(|m| m["destination"] != "/proc");
        m.insert(
            0,
            json!({"destination": "/proc", "type": "bind", "source": "/proc",
                           "options": ["rbind"]}),
        );
    });
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("host procfs bound onto /proc", &outs);
    assert_eq!(outs[1].stdout, "proc\n");

    let not_proc = env.mkdir("not-proc");
    with_mounts(&mut b, |m| {
        m[0]["source"] = not_proc.to_str().unwrap().into()
    });
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same_code("a directory bound onto /proc", &outs);
    assert_eq!(outs[1].code, 1);
    assert!(outs[1].stderr.contains("not of type proc"), "{:?}", outs[1]);
}

/// runc, run without a mount namespace, turns the caller's / rslave and leaves its
/// mounts behind: it runs here in a throwaway mount namespace of its own.
fn run_in_host_mount_ns(env: &Env, rt: Rt, b: &Bundle) -> Out {
    let id = env.id(rt.name());
    let bundle = b.dir.to_str().unwrap();
    match rt {
        Rt::Paddock => env.rt(rt, &["run", "-b", bundle, &id]),
        Rt::Runc => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private"])
                .arg(rt.bin());
            c.arg("--root")
                .arg(env.rt_root(rt))
                .args(["run", "-b", bundle, &id]);
            c.stdin(std::process::Stdio::null());
            env.output(c)
        }
    }
}

/// runc 1.5 sets up the rootfs and chroots into it, running prestart and
/// createRuntime hooks once; runc 1.1.5 neither chroots nor runs them once, so
/// only the exit code is compared and paddock is held to 1.5's behaviour.
#[test]
fn no_mount_namespace_runs_with_hooks_and_leaves_no_mount() {
    let env = Env::new();
    let mut b = sh_bundle(
        &env,
        "cat /marker; grep -c ' /dev/pts ' /proc/self/mountinfo",
    );
    fs::write(b.rootfs.join("marker"), "inside\n").unwrap();
    let log = env.dir.join("hooks.log");
    b.remove_namespace("mount");
    b.config(|c| {
        let linux = c["linux"].as_object_mut().unwrap();
        linux.remove("maskedPaths");
        linux.remove("readonlyPaths");
        let hook = |kind: &str| {
            let cmd = format!("echo {kind} >> {}", log.display());
            json!([{"path": "/bin/sh", "args": ["sh", "-c", cmd]}])
        };
        c["hooks"] = json!({"prestart": hook("prestart"), "createRuntime": hook("createRuntime"),
                            "poststart": hook("poststart"), "poststop": hook("poststop")});
    });
    let runs = side_by_side(|rt| {
        let _ = fs::remove_file(&log);
        let out = run_in_host_mount_ns(&env, rt, &b);
        (out, fs::read_to_string(&log).unwrap_or_default())
    });
    let [(runc, runc_log), (paddock, paddock_log)] = runs;
    let outs = [runc, paddock];
    let logs = [runc_log, paddock_log];
    assert_same_code("no mount namespace", &outs);
    assert_eq!(outs[1].stdout, "inside\n1\n");
    let hooks = "prestart\ncreateRuntime\npoststart\npoststop\n";
    assert_eq!(logs[1], hooks, "runc 1.1.5 ran: {:?}", logs[0]);
    // Env's guard checks that no mount is left on the host.
    env.assert_clean();

    // Masks would cover host paths: refused, as runc does.
    b.config(|c| c["linux"]["maskedPaths"] = json!(["/proc/kcore"]));
    let outs = side_by_side(|rt| run_in_host_mount_ns(&env, rt, &b));
    assert_same_code("masks without a mount namespace", &outs);
    assert!(
        outs[1].stderr.contains("without a private MNT namespace"),
        "{:?}",
        outs[1]
    );

    // A create that fails after the mounts were made leaves none of them either.
    b.config(|c| {
        c["linux"].as_object_mut().unwrap().remove("maskedPaths");
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    });
    let out = env.rt_run(Rt::Paddock, &b);
    assert_eq!(out.code, 1, "{out:?}");
    env.assert_clean();
}

/// paddock only (runc runs exec'd processes at the host's /): an exec into a
/// container without a mount namespace is chrooted into its rootfs.
#[test]
fn exec_into_a_container_without_mount_namespace_sees_its_rootfs() {
    let env = Env::new();
    let mut b = sh_bundle(&env, "sleep 30");
    b.remove_namespace("mount");
    b.config(|c| {
        let linux = c["linux"].as_object_mut().unwrap();
        linux.remove("maskedPaths");
        linux.remove("readonlyPaths");
    });
    fs::write(b.rootfs.join("marker"), "inside\n").unwrap();
    let id = env.id("nomntns");
    let bundle = b.dir.to_str().unwrap();
    env.paddock(&["create", "-b", bundle, &id]).success();
    env.paddock(&["start", &id]).success();
    let out = env.paddock(&["exec", &id, "cat", "/marker"]).success();
    assert_eq!(out.stdout, "inside\n");
    // The host's mount namespace, seen through the container's own /proc.
    let out = env.paddock(&["exec", &id, "readlink", "/proc/self/ns/mnt"]);
    let host = fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(out.success().stdout.trim(), host.to_str().unwrap());
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

#[test]
fn no_pivot_keeps_a_fresh_proc_from_being_mounted() {
    let env = Env::new();
    // An unprivileged user makes its own user, mount and pid namespaces, where a
    // proc mount is allowed only if a whole procfs is visible in the mount namespace.
    let mut b = sh_bundle(
        &env,
        "unshare -Urmpf sh -c 'mount -t proc proc /tmp 2>/dev/null && echo mounted || echo refused'",
    );
    b.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        env.rt(
            rt,
            &["run", "--no-pivot", "-b", b.dir.to_str().unwrap(), &id],
        )
    });
    assert_same("--no-pivot fresh proc", &outs);
    assert_eq!(outs[1].stdout, "refused\n");
}

/// Configs runc refuses: a mount on top of the rootfs; filesystem options on a
/// bind (runc 1.5's mountsStrict; runc 1.1.5 accepts and ignores them, so that
/// case holds paddock alone to 1.5).
#[test]
fn mounts_runc_refuses_are_refused() {
    let env = Env::new();
    let src = env.mkdir("src");
    let cases = [
        (
            json!({"destination": "/", "type": "tmpfs", "source": "tmpfs"}),
            "on the top of rootfs",
            true,
        ),
        (
            bind(&src, "/data", &["size=1m"]),
            "bind mounts cannot have any filesystem-specific options",
            false,
        ),
    ];
    for (mount, why, runc_115_agrees) in cases {
        let mut b = sh_bundle(&env, "echo ran");
        b.add_mount(mount);
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        if runc_115_agrees {
            assert_same("refused mount", &outs);
        }
        assert_eq!(outs[1].code, 1);
        assert!(outs[1].stderr.contains(why), "{:?}", outs[1]);
    }
}
