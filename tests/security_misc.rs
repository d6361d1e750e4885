//! Escape battery E-G (security.md section 2): seccomp (T26; T27 and T28 live in
//! tests/seccomp.rs: multiple_conditions_are_anded, enosys_*, default_errno_ret_*),
//! sysctls, mount and path safety, IDs, hostile configs, cleanup, state files and
//! kill/delete (T30-T36, T38). Skipped: T29 (race stress), T37 (rootless is not
//! supported), T39 (no checkpoint/restore). Every test checks the global invariants.
mod common;
mod security_support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::process::Command;

use common::{bind, Bundle};
use security_support::{field, tree, Sec};
use serde_json::{json, Value};

fn default_profile() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/seccomp-profiles/default.json");
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

#[test]
fn t26_default_seccomp_profile_in_init_and_exec() {
    let t = Sec::new();
    let probe = "cat /proc/self/status; unshare -U true && echo UNSHARED; \
                 unshare -m true && echo MNTNS; true";
    let mut b = t.bundle(&["sh", "-c", &format!("{probe}; sleep 1000")]);
    b.config(|c| c["linux"]["seccomp"] = default_profile());
    let (id, init) = t.up(&b);
    let s = fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    assert_eq!(field(&s, "Seccomp"), "2");
    let s = t.exec(&[], &id, &["sh", "-c", probe]).success().stdout;
    assert_eq!(field(&s, "Seccomp"), "2");
    assert!(!s.contains("UNSHARED") && !s.contains("MNTNS"), "{s}");
    t.down(&id);
}

#[test]
fn t30_sysctl_validation() {
    let t = Sec::new();
    let cases: [(&str, &str, &[&str]); 16] = [
        ("kernel.core_pattern", "|/x", &[]),
        ("kernel.modprobe", "/x", &[]),
        ("vm.overcommit_memory", "1", &[]),
        ("fs.file-max", "1000", &[]),
        ("net.ipv4.ip_forward", "1", &["network"]),
        ("kernel.shmmax", "1000", &["ipc"]),
        ("kernel.hostname", "other", &[]),
        ("net/ipv4/ip_forward", "1", &[]),
        (
            "net.ipv4.ip_forward/../../../kernel/core_pattern",
            "|/x",
            &[],
        ),
        ("net.ipv4..ip_forward", "1", &[]),
        (
            "net.ipv4.conf.all/../../../../kernel.core_pattern",
            "|/x",
            &[],
        ),
        (".net.ipv4.ip_forward", "1", &[]),
        ("net.ipv4.ip_forward.", "1", &[]),
        ("", "1", &[]),
        ("net.ipv4.conf...all.forwarding", "1", &[]),
        ("kernel.sem/..", "1", &[]),
    ];
    for (key, value, drop_ns) in cases {
        let mut b = t.bundle(&["true"]);
        for ns in drop_ns {
            b.remove_namespace(ns);
        }
        b.config(|c| c["linux"]["sysctl"] = json!({ key: value }));
        let id = t.id("sysctl");
        let out = t.create(&b, &id);
        assert!(!out.ok(), "accepted {key}={value}: {out:?}");
        out.fails_with_one_line();
        t.paddock(&["delete", "--force", &id]);
    }
    // A value is written verbatim to its one key.
    let mut b = t.bundle(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    b.config(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1+kernel.core_pattern=|/x"})
    });
    let id = t.id("sysctl");
    let out = t.run(&b, &id);
    if !out.ok() {
        out.fails_with_one_line();
        t.paddock(&["delete", "--force", &id]);
    }
    // (d) of the global invariants: the host core_pattern is unchanged.
}

#[test]
fn t31_mount_targets_through_symlinks_stay_in_the_rootfs() {
    let t = Sec::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "cat /tmp/foo/bar/baz/hosts; cat /etc/hosts; grep -c ' /tmp/foo/bar/baz/hosts ' \
         /proc/self/mountinfo",
    ]);
    let hosts = t.dir.join("hosts");
    fs::write(&hosts, "HOSTS\n").unwrap();
    symlink("/jump/baz/hosts", b.rootfs.join("etc/hosts")).unwrap();
    symlink("/tmp/foo/bar", b.rootfs.join("jump")).unwrap();
    b.add_mount(bind(&hosts, "/etc/hosts", &[]));
    let out = t.run(&b, &t.id("lnk")).success();
    // The mount target (and the missing dirs above it, mode 0755 as in runc) is
    // made inside the rootfs, where the symlinks lead.
    assert!(b.rootfs.join("tmp/foo/bar/baz/hosts").is_file());
    let md = fs::metadata(b.rootfs.join("tmp/foo/bar/baz")).unwrap();
    assert_eq!(
        md.mode() & 0o777,
        0o755,
        "missing parent dirs of a file mount"
    );
    assert_eq!(out.stdout, "HOSTS\nHOSTS\n1\n", "{out:?}");

    let outside = t.outside("outside");
    let mut b = t.bundle(&["true"]);
    let rel = format!("../../../..{}", outside.display());
    symlink(&rel, b.rootfs.join("data")).unwrap();
    assert!(
        b.rootfs.join("data").is_dir(),
        "the link reaches the host dir"
    );
    b.add_mount(json!({"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs"}));
    let id = t.id("lnk");
    let out = t.run(&b, &id);
    if !out.ok() {
        out.fails_with_one_line();
        t.paddock(&["delete", "--force", &id]);
    }
    assert!(!outside.join("sub").exists());
}

#[test]
fn t32_devices_allow_list() {
    let t = Sec::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "mknod /tmp/sda b 7 0 && head -c1 /tmp/sda && echo READ; \
         echo LIST; ls -A /dev; echo STAT; \
         for d in null zero full random urandom tty ptmx console; do \
           [ -e /dev/$d ] && stat -c '%n %F %t:%T' /dev/$d; done; \
         readlink /dev/ptmx; true",
    ]);
    b.config(|c| {
        c["linux"]["resources"]
            .as_object_mut()
            .unwrap()
            .remove("devices");
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_MKNOD".into());
        }
    });
    b.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    let s = t.run(&b, &t.id("dev")).success().stdout;
    assert!(!s.contains("READ"), "read a block device: {s}");
    let (_, rest) = s.split_once("LIST\n").unwrap();
    let (list, stat) = rest.split_once("STAT\n").unwrap();
    let allowed = [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
        "stdin", "stdout", "stderr", "core",
    ];
    for n in list.split_whitespace() {
        assert!(allowed.contains(&n), "unexpected /dev/{n}: {s}");
    }
    for (n, want) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let line = format!("/dev/{n} character special file {want}\n");
        assert!(stat.contains(&line), "{line}: {s}");
    }
    // ptmx: a symlink to pts/ptmx, or char 5:2.
    assert!(
        stat.contains("/dev/ptmx symbolic link") && s.ends_with("pts/ptmx\n")
            || stat.contains("/dev/ptmx character special file 5:2"),
        "{s}"
    );
}

#[test]
fn t33_container_id_validation() {
    let t = Sec::new();
    let b = t.bundle(&["true"]);
    let long = "a".repeat(100_000);
    // What a bad ID could create outside --root: these names in /tmp (the root's
    // grandparent). Only these are watched: other processes write to /tmp too.
    let escapes = ["/tmp/x", "/tmp/a", "/tmp/b", "/tmp/-a", "/tmp/a\nb"];
    let existed: Vec<bool> = escapes
        .iter()
        .map(|p| fs::symlink_metadata(p).is_ok())
        .collect();
    let before_dir = tree(&t.dir, false);
    for id in ["../../x", ".", "..", "a/b", "", "a\nb", "-a", &long] {
        let out = t.create(&b, id);
        assert!(!out.ok(), "accepted id {id:?}");
        out.fails_with_one_line();
    }
    let mut after: Vec<_> = fs::read_dir(&t.root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    after.sort();
    assert!(after.is_empty(), "state entries: {after:?}");
    for (p, was) in escapes.iter().zip(existed) {
        assert!(was || fs::symlink_metadata(p).is_err(), "{p} was created");
    }
    let new_dir: Vec<_> = tree(&t.dir, false)
        .difference(&before_dir)
        .filter(|n| !n.starts_with("state ") && !n.starts_with(".out") && !n.starts_with(".err"))
        .cloned()
        .collect();
    assert!(new_dir.is_empty(), "{new_dir:?}");
}

/// create must fail with one line; nothing may be left (the Env guard checks state,
/// cgroups and processes when the test ends).
#[track_caller]
fn rejected(t: &Sec, b: &Bundle, what: &str) {
    let id = t.id("bad");
    let out = t.create(b, &id);
    assert!(!out.ok(), "accepted {what}");
    out.fails_with_one_line();
    assert!(!t.root.join(&id).exists(), "{what}: state left");
}

#[test]
fn t34_malformed_or_hostile_config() {
    let t = Sec::new();
    let b = t.bundle(&["true"]);
    let cfg = b.dir.join("config.json");
    let full = fs::read(&cfg).unwrap();
    fs::write(&cfg, &full[..full.len() / 2]).unwrap();
    rejected(&t, &b, "truncated JSON");

    for (what, edit) in [
        ("args as a number", json!({"process": {"args": 5}})),
        (
            "uid as a string",
            json!({"process": {"user": {"uid": "0", "gid": 0}}}),
        ),
        ("ociVersion 9.9", json!({"ociVersion": "9.9"})),
    ] {
        let mut b = t.bundle(&["true"]);
        b.config(|c| merge(c, &edit));
        rejected(&t, &b, what);
    }

    // A symlinked root.path (absolute and relative), as runc's "not an absolute
    // path, or a symlink".
    for absolute in [true, false] {
        let mut b = t.bundle(&["true"]);
        let link = b.dir.join("rootlink");
        symlink("rootfs", &link).unwrap();
        let p = if absolute {
            link.display().to_string()
        } else {
            "rootlink".into()
        };
        b.config(|c| c["root"]["path"] = p.into());
        rejected(&t, &b, "symlinked root.path");
    }

    let mut b = t.bundle(&["true"]);
    b.set_namespace(json!({"type": "user"}));
    b.config(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 1000},
            {"containerID": 500, "hostID": 200000, "size": 1000}
        ]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}]);
    });
    rejected(&t, &b, "overlapping uid maps");

    // Accepted or rejected cleanly: a 1 MiB annotation and 100k mounts.
    let mut b = t.bundle(&["true"]);
    b.config(|c| c["annotations"] = json!({"big": "x".repeat(1 << 20)}));
    clean_either_way(&t, &b);
    let mut b = t.bundle(&["true"]);
    b.config(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        for i in 0..100_000 {
            m.push(json!({"destination": format!("/tmp/m{i}"), "type": "tmpfs",
                          "source": "tmpfs"}));
        }
    });
    clean_either_way(&t, &b);
}

fn merge(c: &mut Value, edit: &Value) {
    match (c, edit) {
        (Value::Object(c), Value::Object(e)) => {
            for (k, v) in e {
                merge(c.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (c, e) => *c = e.clone(),
    }
}

fn clean_either_way(t: &Sec, b: &Bundle) {
    let id = t.id("big");
    let out = t.create(b, &id);
    if out.ok() {
        t.down(&id);
    } else {
        out.fails_with_one_line();
        assert!(!t.root.join(&id).exists());
    }
}

#[test]
fn t35_failure_during_init_cleans_up() {
    let t = Sec::new();
    let b = t.bundle(&["/nonexistent"]);
    rejected(&t, &b, "missing binary");

    let mut b = t.bundle(&["/bin/script"]);
    let script = b.rootfs.join("bin/script");
    fs::write(&script, "#!/nonexistent\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let id = t.id("interp");
    let out = t.create(&b, &id);
    if out.ok() {
        let out = t.paddock(&["start", &id]);
        if !out.ok() {
            out.fails_with_one_line();
        }
        t.down(&id);
    } else {
        out.fails_with_one_line();
    }
    b.args(&["true"]);

    b.config(|c| c["process"]["cwd"] = "/etc/passwd/sub".into());
    rejected(&t, &b, "cwd under a non-dir");

    let mut b = t.bundle(&["true"]);
    b.config(|c| c["process"]["apparmorProfile"] = "rt-test".into());
    let id = t.id("aa");
    let out = t.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("AppArmor is not enabled"), "{out:?}");
}

#[test]
fn t36_state_files_are_not_attacker_writable() {
    let t = Sec::new();
    let b = t.bundle(&[
        "sh",
        "-c",
        "find / -name state.json -o -name exec.fifo 2>/dev/null; echo END",
    ]);
    let id = t.id("st");
    t.create(&b, &id).success();
    let md = fs::metadata(t.root.join(&id)).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o700);
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let md = fs::metadata(&t.root).unwrap();
    assert_eq!(md.mode() & 0o022, 0, "--root is group/world writable");
    t.down(&id);
    let out = t.run(&b, &t.id("st")).success();
    assert_eq!(out.stdout, "END\n");
}

#[test]
fn t38_kill_and_delete_cannot_be_hijacked() {
    let t = Sec::new();
    let mut victim = Command::new("sleep").arg("1000").spawn().unwrap();
    let vp = victim.id();
    let script = format!(
        "echo {vp} > /tmp/pid; echo {vp} > /run/pid; mkdir -p /run/paddock; \
         echo {vp} > /run/paddock/pid; ln -sf /proc/{vp} /run/victim; \
         echo {vp} > /sys/fs/cgroup/pids/cgroup.procs 2>/dev/null; \
         sleep 1000 & sleep 1000 & exec sleep 1000"
    );
    let mut b = t.bundle(&["sh", "-c", &script]);
    b.config(|c| c["root"]["readonly"] = false.into());
    b.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    b.add_mount(json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs"}));
    for how in ["kill", "delete"] {
        let (id, init) = t.up(&b);
        assert!(common::wait_for(|| fs::read_to_string(format!(
            "/proc/{init}/cmdline"
        ))
        .is_ok_and(|c| c.starts_with("sleep"))));
        if how == "kill" {
            t.paddock(&["kill", "--all", &id, "KILL"]).success();
            assert!(t.wait_status(&id, "stopped"));
            t.paddock(&["delete", &id]).success();
        } else {
            t.down(&id);
        }
        assert!(
            victim.try_wait().unwrap().is_none(),
            "{how} killed host pid {vp}"
        );
        let cg = fs::read_to_string(format!("/proc/{vp}/cgroup")).unwrap();
        assert!(!cg.contains("paddock"), "{cg}");
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
}
