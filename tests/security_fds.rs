//! Escape battery B and C (security.md section 2): file descriptors and cwd (T07-T12),
//! runtime-binary protection (T13-T14). Every test checks the global invariants.
mod common;
mod security_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use common::inside;
use security_support::{exec_args, leak_dirs, top_names, Sec};

fn fd_names(out: &str) -> Vec<u32> {
    let mut v: Vec<u32> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    v.sort();
    v
}

#[test]
fn t07_init_fd_hygiene_from_the_host() {
    let t = Sec::new();
    let b = t.bundle(&["true"]);
    let id = t.id("fd");
    t.create(&b, &id).success();
    let init = t.state(&id)["pid"].as_i64().unwrap();
    let fifo_dir = t.root.join(&id);
    let mut seen = Vec::new();
    for e in fs::read_dir(format!("/proc/{init}/fd")).unwrap().flatten() {
        let target = fs::read_link(e.path()).unwrap();
        let s = target.to_string_lossy().into_owned();
        let ok = s.starts_with("/dev/pts/")
            || s.starts_with("pipe:")
            || s.starts_with("socket:")
            || s.starts_with("anon_inode:")
            || s.starts_with("/memfd:paddock")
            || s == "/dev/null"
            || target.starts_with(&fifo_dir)
            // The harness's stdout/stderr files (common::Env::output).
            || target.starts_with(&t.dir) && s.contains("/.out") | s.contains("/.err");
        assert!(ok, "fd {:?} -> {s} not allowed", e.file_name());
        // No directory fd at all (into the host mount namespace or elsewhere).
        let md = fs::metadata(e.path());
        assert!(
            !md.is_ok_and(|m| m.is_dir()),
            "directory fd {:?} -> {s}",
            e.file_name()
        );
        seen.push(s);
    }
    assert!(!seen.is_empty());
    t.down(&id);
}

#[test]
fn t08_container_sees_only_0_1_2() {
    let t = Sec::new();
    let b = t.bundle(&["ls", "/proc/self/fd"]);
    let out = t.run(&b, &t.id("fd")).success();
    assert_eq!(fd_names(&out.stdout), [0, 1, 2, 3], "{out:?}");

    // A leaky harness: fds 7 and 8 are host dirs without CLOEXEC.
    let id = t.id("fd");
    let mut cmd = t.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]);
    leak_dirs(&mut cmd, &[(7, Path::new("/")), (8, Path::new("/etc"))]);
    let out = t.output(cmd).success();
    assert_eq!(fd_names(&out.stdout), [0, 1, 2, 3], "{out:?}");

    // --preserve-fds 2 passes exactly 3 and 4, and they are the harness's.
    let (a, c) = (t.mkdir("fd-three"), t.mkdir("fd-four"));
    let b = t.bundle(&[
        "sh",
        "-c",
        "ls /proc/self/fd; readlink /proc/self/fd/3; readlink /proc/self/fd/4",
    ]);
    let id = t.id("fd");
    let mut cmd = t.cmd(&[
        "run",
        "--preserve-fds",
        "2",
        "-b",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    leak_dirs(
        &mut cmd,
        &[
            (3, &a),
            (4, &c),
            (7, Path::new("/")),
            (8, Path::new("/etc")),
        ],
    );
    let out = t.output(cmd).success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let n = lines.len();
    assert!(n >= 2, "{out:?}");
    // `sh -c` runs ls as a child: the sh's fds are 0-4; ls adds its dirfd.
    assert_eq!(fd_names(&lines[..n - 2].join(" ")), [0, 1, 2, 3, 4, 5]);
    assert!(lines[n - 2].ends_with(a.file_name().unwrap().to_str().unwrap()));
    assert!(lines[n - 1].ends_with(c.file_name().unwrap().to_str().unwrap()));
}

#[test]
fn t09_exec_fd_hygiene() {
    let t = Sec::new();
    let (id, _) = t.up(&t.bundle(&["sleep", "1000"]));
    let mut cmd = t.cmd(&exec_args(&[], &id, &["ls", "/proc/self/fd"]));
    leak_dirs(&mut cmd, &[(7, Path::new("/")), (8, Path::new("/etc"))]);
    let out = t.output(cmd).success();
    assert_eq!(fd_names(&out.stdout), [0, 1, 2, 3], "{out:?}");
    // -t without a console socket: paddock proxies the pty in the foreground.
    let mut cmd = t.cmd(&exec_args(&["-t"], &id, &["ls", "/proc/self/fd"]));
    leak_dirs(&mut cmd, &[(7, Path::new("/")), (8, Path::new("/etc"))]);
    let out = t.output(cmd).success();
    assert_eq!(fd_names(&out.stdout), [0, 1, 2, 3], "{out:?}");
    t.down(&id);
}

/// Host dirs leaked into paddock at fds 3..=12 (the CVE-2024-21626 setup).
fn leaky(t: &Sec) -> Vec<(i32, std::path::PathBuf)> {
    (3..=12)
        .map(|n| {
            let p = match n % 3 {
                0 => "/".into(),
                1 => t.dir.clone(),
                _ => "/etc".into(),
            };
            (n, p)
        })
        .collect()
}

fn leak_all(cmd: &mut std::process::Command, fds: &[(i32, std::path::PathBuf)]) {
    let v: Vec<(i32, &Path)> = fds.iter().map(|(n, p)| (*n, p.as_path())).collect();
    leak_dirs(cmd, &v);
}

#[test]
fn t10_cwd_proc_self_fd_n() {
    let t = Sec::new();
    let fds = leaky(&t);
    for n in 3..=12 {
        let mut b = t.bundle(&[
            "sh",
            "-c",
            "readlink /proc/self/cwd; echo LIST; ls /proc/self/cwd/..",
        ]);
        b.config(|c| c["process"]["cwd"] = format!("/proc/self/fd/{n}").into());
        let id = t.id("cwd");
        let mut cmd = t.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]);
        leak_all(&mut cmd, &fds);
        let out = t.output(cmd);
        assert!(
            !out.stdout.contains("work") && !out.stdout.contains("paddock-test"),
            "host listing, N={n}: {out:?}"
        );
        if out.ok() {
            let cwd = out.stdout.lines().next().unwrap_or("");
            assert!(inside(cwd, &top_names(&b.rootfs)), "N={n}: {out:?}");
        } else {
            let out = out.fails_with_one_line();
            assert!(
                out.stderr.contains("chdir") || out.stderr.contains("cwd"),
                "{out:?}"
            );
            t.paddock(&["delete", "--force", &id]);
        }
    }
}

#[test]
fn t11_exec_cwd_through_a_symlink() {
    let t = Sec::new();
    let mut b = t.bundle(&["sleep", "1000"]);
    b.config(|c| c["root"]["readonly"] = false.into());
    let top = top_names(&b.rootfs);
    let (id, _) = t.up(&b);
    let fds = leaky(&t);
    for n in 3..=12 {
        let link = format!("rm -f /tmp/w; ln -s /proc/self/fd/{n} /tmp/w");
        t.exec(&[], &id, &["sh", "-c", &link]).success();
        let mut cmd = t.cmd(&exec_args(&["--cwd", "/tmp/w"], &id, &["pwd"]));
        leak_all(&mut cmd, &fds);
        let out = t.output(cmd);
        if out.ok() {
            assert!(inside(out.stdout.trim_end(), &top), "N={n}: {out:?}");
        } else {
            // exec's own failures exit 255, as runc's do.
            assert_eq!(out.code, 255, "N={n}: {out:?}");
            assert_eq!(out.stderr.lines().count(), 1, "N={n}: {out:?}");
        }
    }
    t.down(&id);
}

#[test]
fn t12_race_watcher_on_exec() {
    // A lighter variant of tests/exec.rs racing_watcher_never_sees_a_host_path (200
    // execs): 50 execs, with leaky host fds in every exec. The ptrace(PTRACE_ATTACH)
    // sub-check is skipped: busybox cannot ptrace.
    let t = Sec::new();
    let watch = t.mkdir("watch");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        "while :; do for f in /proc/[0-9]*/exe /proc/[0-9]*/cwd /proc/[0-9]*/root \
         /proc/[0-9]*/fd/*; do readlink $f; done; done >/watch/log 2>/dev/null",
    ]);
    b.add_mount(common::bind(&watch, "/watch", &[]));
    let id = t.id("watch");
    let mut create = t.cmd(&["create", "-b", b.dir.to_str().unwrap(), &id]);
    create.stdout(Stdio::null()).stderr(Stdio::null());
    assert!(create.status().unwrap().success());
    t.paddock(&["start", &id]).success();
    let fds = leaky(&t);
    for _ in 0..50 {
        let mut c = t.cmd(&exec_args(&[], &id, &["true"]));
        c.stdout(Stdio::null()).stderr(Stdio::null());
        leak_all(&mut c, &fds);
        assert!(c.status().unwrap().success());
    }
    t.down(&id);
    let log = fs::read_to_string(watch.join("log")).unwrap();
    assert!(log.contains("/bin/busybox"), "the watcher ran: {log:?}");
    let mut top = top_names(&b.rootfs);
    top.push("watch".into());
    let leaks: Vec<&str> = log.lines().filter(|l| !inside(l, &top)).collect();
    assert!(leaks.is_empty(), "host paths seen: {leaks:?}");
}

#[test]
fn t13_overwrite_attempt_via_proc_pid_exe() {
    let t = Sec::new();
    let watch = t.mkdir("watch");
    let mut b = t.bundle(&[
        "sh",
        "-c",
        // Open every /proc/PID/exe for appending (never write: a success is logged).
        "while :; do for p in /proc/[0-9]*; do \
         (exec 3>>$p/exe && echo OPENED $p $(readlink $p/exe)) 2>/dev/null; \
         done; done >/watch/log",
    ]);
    b.add_mount(common::bind(&watch, "/watch", &[]));
    // /bin/true is the CVE-2019-5736 script.
    let tr = b.rootfs.join("bin/true");
    fs::remove_file(&tr).unwrap();
    fs::write(&tr, "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(&tr, fs::Permissions::from_mode(0o755)).unwrap();
    let id = t.id("exe");
    let mut create = t.cmd(&["create", "-b", b.dir.to_str().unwrap(), &id]);
    create.stdout(Stdio::null()).stderr(Stdio::null());
    assert!(create.status().unwrap().success());
    t.paddock(&["start", &id]).success();
    for _ in 0..100 {
        // It may fail (paddock run as an interpreter refuses); it must never harm.
        let _ = t.exec(&[], &id, &["/bin/true"]);
    }
    t.down(&id);
    let log = fs::read_to_string(watch.join("log")).unwrap();
    assert!(!log.contains("OPENED"), "{log}");
    // (a) of the global invariants checks the binary bytes when `t` drops.
}

#[test]
fn t14_sealed_exe_in_place() {
    let t = Sec::new();
    let b = t.bundle(&["true"]);
    let id = t.id("seal");
    t.create(&b, &id).success();
    let init = t.state(&id)["pid"].as_i64().unwrap();
    let exe = fs::read_link(format!("/proc/{init}/exe")).unwrap();
    let on_disk = fs::canonicalize(common::bin()).unwrap();
    assert_ne!(exe, on_disk, "init runs the writable on-disk binary");
    let s = exe.to_string_lossy();
    assert!(
        s == "/paddock" || s.starts_with("/memfd:") && s.ends_with("(deleted)"),
        "{s}"
    );
    let w = fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/{init}/exe"));
    assert!(w.is_err(), "opened /proc/{init}/exe for writing");
    t.down(&id);
}
