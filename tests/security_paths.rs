//! Escape battery D (security.md section 2): procfs, sysfs and /dev confinement,
//! T15-T22 and T25. T23 (LSM labels) and T24 (fresh procfs in a userns) are skipped:
//! this kernel has no AppArmor/SELinux, and busybox `unshare` cannot do `-r` with the
//! default caps. Every test checks the global invariants.
mod common;
mod security_support;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Stdio;

use common::recv_one_fd;
use common::{bind, Bundle};
use security_support::{read_pty, Sec};
use serde_json::{json, Value};

/// Drops the mounts at these destinations from the config.
fn drop_mounts(b: &mut Bundle, dests: &[&str]) {
    b.config(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| !dests.contains(&m["destination"].as_str().unwrap()))
    });
}

#[test]
fn t15_read_only_paths() {
    let t = Sec::new();
    let mut b = t.bundle(&[]);
    let s = t.sh(
        &mut b,
        "for f in /proc/sys/kernel/domainname /proc/sysrq-trigger /proc/irq/default_smp_affinity; do \
           echo x > $f && echo WROTE $f; done; \
         umount /proc/sys && echo UMOUNTED; \
         mount -o remount,rw /proc/sys && echo REMOUNTED; \
         grep -c ' /proc/sys ' /proc/self/mountinfo; \
         grep ' /proc/sys \\| /proc/sysrq-trigger \\| /proc/irq ' /proc/self/mounts; true",
    );
    for bad in ["WROTE", "UMOUNTED", "REMOUNTED"] {
        assert!(!s.contains(bad), "{s}");
    }
    // This kernel has no /proc/sysrq-trigger: count what the host has.
    let want = ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .count();
    let ro: Vec<&str> = s.lines().filter(|l| l.starts_with("proc ")).collect();
    assert_eq!(ro.len(), want, "{s}");
    for l in ro {
        let opts = l.split_whitespace().nth(3).unwrap();
        assert!(opts.split(',').any(|o| o == "ro"), "{l}");
    }
    // EROFS (not just EACCES): run once more to see the message.
    let out = t
        .run_args(
            &mut b,
            &["sh", "-c", "echo x > /proc/sys/kernel/domainname; true"],
        )
        .stderr;
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
fn t16_masked_paths() {
    let t = Sec::new();
    let mut b = t.bundle(&[]);
    let s = t.sh(
        &mut b,
        "for f in /proc/kcore /proc/keys /proc/timer_list; do \
           [ -e $f ] || continue; echo \"$f $(wc -c < $f) $(stat -c %t:%T $f)\"; done; \
         for d in /proc/acpi /proc/scsi /sys/firmware; do \
           [ -e $d ] || continue; echo \"$d [$(ls -A $d)]\"; touch $d/x && echo TOUCHED $d; done; \
         umount /proc/kcore && echo UMOUNTED; \
         grep -E ' /proc/acpi | /proc/scsi | /sys/firmware ' /proc/self/mountinfo; true",
    );
    // This kernel has no /proc/kcore: check the files the host has.
    for f in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
        if !Path::new(f).exists() {
            continue;
        }
        assert!(s.contains(&format!("{f} 0 1:3\n")), "{f}: {s}");
    }
    assert!(s.contains("/proc/acpi []"), "{s}");
    assert!(s.contains("/sys/firmware []"), "{s}");
    assert!(!s.contains("TOUCHED") && !s.contains("UMOUNTED"), "{s}");
    // Masked dirs: read-only tmpfs mounts.
    let dirs: Vec<&str> = s.lines().filter(|l| l.contains(" - tmpfs ")).collect();
    assert!(dirs.len() >= 2, "{s}");
    for l in dirs {
        let opts = l.split_whitespace().nth(5).unwrap();
        assert!(opts.split(',').any(|o| o == "ro"), "{l}");
    }
}

#[test]
fn t17_symlinked_proc_or_sys() {
    let t = Sec::new();
    for name in ["proc", "sys"] {
        for relative in [false, true] {
            let b = t.bundle(&["true"]);
            let link = b.rootfs.join(name);
            fs::remove_dir(&link).unwrap();
            if relative {
                // ../../x from the rootfs is the temp dir's `x` on the host.
                let x = t.dir.join("x");
                fs::create_dir_all(&x).unwrap();
                t.sentinel(&x);
                let rel = format!("../../{}", "x");
                symlink(&rel, &link).unwrap();
                assert!(b.dir.parent().unwrap().join("x").is_dir());
            } else {
                let bad = b.rootfs.join(format!("bad-{name}"));
                fs::create_dir(&bad).unwrap();
                t.sentinel(&bad);
                symlink(format!("/bad-{name}"), &link).unwrap();
            }
            let id = t.id("lnk");
            let out = t.create(&b, &id);
            assert!(!out.ok(), "{name} relative={relative}: {out:?}");
            out.fails_with_one_line();
            t.paddock(&["delete", "--force", &id]);
        }
    }
}

/// A host dir bound at /dev (instead of the /dev tmpfs) with `null -> target`.
fn fake_dev(t: &Sec, b: &mut Bundle, target: &str) {
    let devdir = t.mkdir("devdir");
    for d in ["pts", "shm", "mqueue"] {
        fs::create_dir(devdir.join(d)).unwrap();
    }
    symlink(target, devdir.join("null")).unwrap();
    b.config(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                *m = bind(&devdir, "/dev", &[]);
            }
        }
    });
}

#[test]
fn t18_fake_dev_null_as_the_masking_source() {
    let t = Sec::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "stat -c %t:%T /etc/secret /proc/keys; grep ' /etc/secret ' /proc/self/mountinfo; \
         echo pwned > /proc/keys; echo pwned > /etc/secret; \
         cat /etc/secret; echo HOST=$(cat /proc/sys/kernel/hostname)",
    ]);
    fs::write(b.rootfs.join("etc/secret"), "SECRET\n").unwrap();
    fake_dev(&t, &mut b, "/proc/sys/kernel/hostname");
    b.push(|c| &mut c["linux"]["maskedPaths"], "/etc/secret".into());
    let out = t.run(&b, &t.id("fnull"));
    if !out.ok() {
        out.fails_with_one_line();
        return;
    }
    let s = out.stdout;
    assert!(s.starts_with("1:3\n1:3\n"), "{s}");
    let line = s.lines().find(|l| l.contains(" /etc/secret ")).unwrap();
    let source = line.split(" - ").nth(1).unwrap();
    assert!(!source.starts_with("proc "), "{line}");
    // Writes to a masked file go to a real /dev/null, not through the fake one.
    assert!(!s.contains("SECRET") && !s.contains("pwned"), "{s}");
    assert!(s.ends_with("HOST=paddock\n"), "{s}");
}

#[test]
fn t19_std_streams_never_follow_dev_null() {
    let t = Sec::new();
    let mut b = t.bundle(&["sh", "-c", "echo hello"]);
    let marker = b.rootfs.join("tmp/marker");
    fs::write(&marker, "MARKER\n").unwrap();
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o600)).unwrap();
    fake_dev(&t, &mut b, "/tmp/marker");
    b.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let out = t.run(&b, &t.id("fnull"));
    if out.ok() {
        assert_eq!(out.stdout, "hello\n");
    } else {
        out.fails_with_one_line();
    }
    assert_eq!(fs::read_to_string(&marker).unwrap(), "MARKER\n");
    let md = fs::metadata(&marker).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o777), (0, 0, 0o600));
}

#[test]
fn t20_dev_symlink_out_of_the_rootfs() {
    let t = Sec::new();
    for relative in [false, true] {
        for with_tmpfs in [true, false] {
            let outside = t.mkdir("outside-dev");
            fs::write(outside.join("ptmx"), "MARKER\n").unwrap();
            t.sentinel(&outside);
            let mut b = t.bundle(&["ls", "-l", "/dev"]);
            if !with_tmpfs {
                drop_mounts(&mut b, &["/dev"]);
            }
            fs::remove_dir(b.rootfs.join("dev")).unwrap();
            let target = if relative {
                format!("../../{}", outside.file_name().unwrap().to_str().unwrap())
            } else {
                outside.display().to_string()
            };
            symlink(&target, b.rootfs.join("dev")).unwrap();
            let id = t.id("devl");
            let out = t.run(&b, &id);
            if !out.ok() {
                out.fails_with_one_line();
                t.paddock(&["delete", "--force", &id]);
            }
            let names: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
            assert_eq!(names.len(), 1, "relative={relative} tmpfs={with_tmpfs}");
            assert_eq!(
                fs::read_to_string(outside.join("ptmx")).unwrap(),
                "MARKER\n"
            );
        }
    }
}

#[test]
fn t21_dev_console() {
    let t = Sec::new();
    let outside = t.outside("outside");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "stat -c %F:%t:%T /dev/console; grep ' /dev/console ' /proc/self/mountinfo; echo done",
    ]);
    b.config(|c| c["process"]["terminal"] = true.into());
    drop_mounts(&mut b, &["/dev"]);
    symlink(outside.join("console"), b.rootfs.join("dev/console")).unwrap();
    let sock = t.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = t.id("cons");
    let mut child = t.spawn(
        &[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "-b",
            b.dir.to_str().unwrap(),
            &id,
        ],
        |c| {
            c.stdout(Stdio::null()).stderr(Stdio::piped());
        },
    );
    let (conn, _) = listener.accept().unwrap();
    let master = recv_one_fd(conn.as_raw_fd());
    let status = child.wait().unwrap();
    assert!(status.success(), "create failed");
    t.paddock(&["start", &id]).success();
    let text = read_pty(&master, "done");
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    // Char 136:N (hex 88) or a symlink to /dev/pts/N.
    assert!(
        first.starts_with("character special file:88:") || first.starts_with("symbolic link"),
        "{text:?}"
    );
    let mi = text.lines().find(|l| l.contains(" /dev/console "));
    if let Some(mi) = mi {
        assert!(mi.contains(" - devpts "), "{mi}");
    }
    assert!(t.wait_status(&id, "stopped"));
    t.down(&id);
    assert!(!outside.join("console").exists());

    // A running container points /dev/ptmx at a procfs file; exec -t must fail
    // cleanly or still get a real pty, and never mount anything on the host.
    let (id, _) = t.up(&t.bundle(&["sleep", "1000"]));
    t.exec(
        &[],
        &id,
        &[
            "sh",
            "-c",
            "rm -f /dev/ptmx && ln -s /proc/sys/kernel/hostname /dev/ptmx",
        ],
    )
    .success();
    let out = t.exec(&["-t"], &id, &["tty"]);
    if out.ok() {
        assert!(out.stdout.trim_end().starts_with("/dev/pts/"), "{out:?}");
    } else {
        out.fails_with_one_line();
    }
    t.down(&id);
}

#[test]
fn t22_no_non_proc_mounts_on_proc() {
    let t = Sec::new();
    let fake = t.outside("fakeproc");
    let file = t.dir.join("file");
    fs::write(&file, "LXCFS\n").unwrap();
    let bad: [Value; 4] = [
        bind(&fake, "/proc", &[]),
        json!({"destination": "/proc", "type": "overlay", "source": "overlay",
               "options": [format!("lowerdir={}", fake.display())]}),
        json!({"destination": "/proc/self/attr", "type": "tmpfs", "source": "tmpfs"}),
        bind(&file, "/proc/sys/kernel/core_pattern", &[]),
    ];
    for m in bad {
        let mut b = t.bundle(&["true"]);
        b.add_mount(m.clone());
        let id = t.id("pm");
        let out = t.create(&b, &id);
        assert!(!out.ok(), "accepted {m}");
        out.fails_with_one_line();
        t.paddock(&["delete", "--force", &id]);
    }
    let mut b = t.bundle(&["cat", "/proc/cpuinfo"]);
    b.add_mount(bind(&file, "/proc/cpuinfo", &[]));
    let out = t.run(&b, &t.id("pm")).success();
    assert_eq!(out.stdout, "LXCFS\n");
}

#[test]
fn t25_read_only_cgroupfs() {
    let t = Sec::new();
    for cgroupns in [true, false] {
        let mut b = t.bundle(&[]);
        if !cgroupns {
            b.remove_namespace("cgroup");
        }
        let s = t.sh(
            &mut b,
            "grep ' /sys/fs/cgroup' /proc/self/mounts; echo END; \
             mkdir /sys/fs/cgroup/x && echo MKDIR; \
             for d in /sys/fs/cgroup /sys/fs/cgroup/*; do \
               [ -f $d/cgroup.procs ] && echo $$ > $d/cgroup.procs && echo JOINED $d; \
               [ -f $d/release_agent ] && echo /x > $d/release_agent && echo AGENT $d; \
               [ -f $d/notify_on_release ] && echo 1 > $d/notify_on_release && echo NOTIFY $d; \
             done 2>/dev/null; true",
        );
        let (mounts, rest) = s.split_once("END\n").unwrap();
        assert!(mounts.lines().count() >= 1, "{s}");
        for l in mounts.lines() {
            let opts = l.split_whitespace().nth(3).unwrap();
            assert!(
                opts.split(',').any(|o| o == "ro"),
                "cgroupns={cgroupns}: {l}"
            );
        }
        for bad in ["MKDIR", "JOINED", "AGENT", "NOTIFY"] {
            assert!(!rest.contains(bad), "cgroupns={cgroupns}: {s}");
        }
    }
}
