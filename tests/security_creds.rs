//! Escape battery A (security.md section 2): credentials and privileges, T01-T06.
//! Every test checks the global invariants when it ends (security_support::Sec).
mod common;
mod security_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;

use security_support::{field, Sec};
use serde_json::json;

const ALL_CAPS: [&str; 5] = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"];

#[test]
fn t01_default_capability_sets() {
    let t = Sec::new();
    let mut b = t.bundle(&[]);
    let s = t.sh(&mut b, "cat /proc/self/status");
    assert_eq!(field(&s, "CapInh"), "0000000000000000");
    assert_eq!(field(&s, "CapAmb"), "0000000000000000");
    for k in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(field(&s, k), "0000000020000420", "{k}");
    }
    assert_eq!(field(&s, "NoNewPrivs"), "1");
}

#[test]
fn t02_exec_cap_never_grows_inheritable_or_ambient() {
    let t = Sec::new();
    let mut b = t.bundle(&["sleep", "1000"]);
    b.config(|c| c["process"]["capabilities"] = json!({}));
    let (id, _) = t.up(&b);
    let s = t
        .exec(
            &["--cap", "CAP_KILL", "--cap", "CAP_AUDIT_WRITE"],
            &id,
            &["cat", "/proc/self/status"],
        )
        .success()
        .stdout;
    for k in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(field(&s, k), "0000000020000020", "{k}: {s}");
    }
    assert_eq!(field(&s, "CapInh"), "0000000000000000");
    assert_eq!(field(&s, "CapAmb"), "0000000000000000");
    t.down(&id);
}

#[test]
fn t03_empty_and_unknown_capabilities() {
    let t = Sec::new();
    let mut b = t.bundle(&[]);
    b.config(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": []
        })
    });
    let s = t.sh(&mut b, "cat /proc/self/status");
    for k in ALL_CAPS {
        assert_eq!(field(&s, k), "0000000000000000", "{k}");
    }
    for list in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        // As runc: an unknown name is ignored with a warning, and grants nothing.
        let mut b = t.bundle(&["true"]);
        b.config(|c| c["process"]["capabilities"] = json!({ list: ["CAP_UNKNOWN"] }));
        let out = t.run(&b, &t.id("unk")).success();
        assert!(
            out.stderr
                .contains("ignoring unknown or unavailable capabilities: [CAP_UNKNOWN]"),
            "{out:?}"
        );
    }
}

#[test]
fn t04_no_new_privs_in_init_and_exec() {
    let t = Sec::new();
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut b = t.bundle(&["sh", "-c", "grep NoNewPrivs /proc/self/status; sleep 1000"]);
        b.config(|c| c["process"]["noNewPrivileges"] = nnp.into());
        let (id, init) = t.up(&b);
        let s = fs::read_to_string(format!("/proc/{init}/status")).unwrap();
        assert_eq!(field(&s, "NoNewPrivs"), want, "init, nnp={nnp}");
        let s = t
            .exec(&[], &id, &["cat", "/proc/self/status"])
            .success()
            .stdout;
        assert_eq!(field(&s, "NoNewPrivs"), want, "exec, nnp={nnp}");
        t.down(&id);
    }
    // The setuid-busybox sub-check is not expressible: the rootfs busybox drops
    // privileges itself for most applets, so euid says nothing about NNP.
}

#[test]
fn t05_exact_user_and_groups() {
    let t = Sec::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "(id; cat /proc/self/status) >/out/log.tmp; mv /out/log.tmp /out/log; sleep 1000",
    ]);
    b.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5]}));
    let outdir = t.mkdir("out");
    std::os::unix::fs::chown(&outdir, Some(1000), Some(1000)).unwrap();
    b.add_mount(common::bind(&outdir, "/out", &[]));
    // Launch paddock with extra supplementary groups 4 and 27 (setpriv --groups 4,27).
    let id = t.id("grp");
    let log = outdir.join("log");
    let mut cmd = t.cmd(&["create", "-b", b.dir.to_str().unwrap(), &id]);
    // SAFETY: setgroups is async-signal-safe; only the child's groups change.
    unsafe {
        cmd.pre_exec(|| {
            let g: [libc::gid_t; 2] = [4, 27];
            if libc::setgroups(2, g.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(t.output(cmd).ok());
    t.paddock(&["start", &id]).success();
    assert!(common::wait_for(|| log.exists()));
    let s = fs::read_to_string(&log).unwrap();
    let idline = s.lines().next().unwrap();
    assert!(
        idline.starts_with("uid=1000(u1000) gid=1000(g1000)"),
        "{idline}"
    );
    assert!(!idline.contains("4") && !idline.contains("27"), "{idline}");
    assert_eq!(field(&s, "Groups"), "5");
    assert_eq!(field(&s, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(&s, "Gid"), "1000\t1000\t1000\t1000");
    // exec inherits nothing from a launcher with extra groups either.
    let s = t
        .exec(&[], &id, &["cat", "/proc/self/status"])
        .success()
        .stdout;
    assert_eq!(field(&s, "Groups"), "5");

    // As in runc, `-u UID` replaces only the uid of the container's user.
    let s = t.exec(&["-u", "1"], &id, &["id"]).success().stdout;
    assert_eq!(s, "uid=1 gid=1000(g1000) groups=5\n");
    t.down(&id);

    // With the default (root) container user: `-u 1` gives gid 0, `-u 1:2` gid 2.
    let (id, _) = t.up(&t.bundle(&["sleep", "1000"]));
    let s = t.exec(&["-u", "1"], &id, &["id"]).success().stdout;
    assert!(s.starts_with("uid=1 gid=0(root)"), "{s}");
    let s = t.exec(&["-u", "1:2"], &id, &["id"]).success().stdout;
    assert_eq!(s, "uid=1 gid=2\n");

    // Host /dev/null keeps its owner when it is the exec'd process's stdin.
    let mut cmd = t.cmd(&["exec", "--user", "1000:1000", &id, "true"]);
    cmd.stdin(fs::File::open("/dev/null").unwrap());
    assert!(t.output(cmd).ok());
    let md = fs::metadata("/dev/null").unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    t.down(&id);
}

#[test]
fn t06_no_host_process_visibility() {
    let t = Sec::new();
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "ls /proc; for n in pid mnt net ipc uts cgroup; do readlink /proc/1/ns/$n; done; \
         echo ENV; cat /proc/1/environ | tr '\\0' '\\n'",
    ]);
    b.config(|c| c["process"]["env"] = json!(["PATH=/bin", "A=b"]));
    // runc 1.5's default config has no cgroup namespace on a v1 host: ask for one.
    b.set_namespace(json!({"type": "cgroup"}));
    let id = t.id("vis");
    let mut cmd = t.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]);
    cmd.env("RT_SECRET", "1");
    let out = t.output(cmd).success();
    let (head, environ) = out.stdout.split_once("ENV\n").unwrap();
    let pids: Vec<u32> = head
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // pid 1 (sh), maybe the ls; never a host pid.
    assert!(
        !pids.is_empty() && pids.len() <= 3 && pids.iter().all(|&p| p < 10),
        "{pids:?}"
    );
    for n in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        let host = fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        let host = host.to_str().unwrap();
        let line = head.lines().find(|l| l.starts_with(&format!("{n}:")));
        let line = line.unwrap_or_else(|| panic!("no {n} ns: {out:?}"));
        assert_ne!(line, host, "{n} namespace is the host's");
    }
    assert!(!environ.contains("RT_SECRET"), "{environ}");
    // As runc: HOME is added from the container's /etc/passwd.
    assert_eq!(environ.trim_end(), "PATH=/bin\nA=b\nHOME=/root");
}
