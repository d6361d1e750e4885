use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use serde_json::json;

use super::*;

const DEFAULT_PROFILE: &str = include_str!("../../../seccomp-profiles/default.json");

pub(super) fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn err(v: serde_json::Value) -> String {
    format!("{:#}", validate(&profile(v)).unwrap_err())
}

/// Builds and loads `p` in a fresh thread (a filter without TSYNC binds only that
/// thread, which then exits), runs `f` there and returns its result.
pub(super) fn filtered<T: Send + 'static>(
    p: LinuxSeccomp,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let filter = build(&p).unwrap();
        // SAFETY: sets no_new_privs on this thread only; no pointers.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            0
        );
        let fd = load(filter).unwrap();
        assert!(fd.is_none());
        f()
    })
    .join()
    .unwrap()
}

/// A raw syscall: Ok(return value) or Err(errno).
pub(super) fn sys(nr: libc::c_long, a: [u64; 3]) -> Result<i64, i32> {
    // SAFETY: the tests only pass arguments the kernel checks (no memory is written).
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], 0u64, 0u64) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn write_fd(fd: i32, len: usize) -> Result<i64, i32> {
    let buf = [b'x'; 4];
    sys(
        libc::SYS_write,
        [fd as u64, buf.as_ptr() as u64, len as u64],
    )
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

/// Enough for a test thread to run and exit.
pub(super) const THREAD_BASICS: &[&str] = &[
    "read",
    "write",
    "close",
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "brk",
    "futex",
    "sigaltstack",
    "rt_sigprocmask",
    "rt_sigaction",
    "sched_yield",
    "exit",
    "exit_group",
    "getpid",
    "gettid",
    "set_robust_list",
    "rseq",
    "clock_gettime",
    "prctl",
];

#[test]
fn validate_names_the_field() {
    let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
    assert!(e.starts_with("linux.seccomp.defaultAction:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert!(e.starts_with("linux.seccomp.syscalls[0].action:"), "{e}");
    assert!(e.contains("listenerPath"), "{e}");
    let e = err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
        {"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(e.starts_with("linux.seccomp.syscalls[0].action:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}));
    assert!(e.starts_with("linux.seccomp.listenerMetadata:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [""], "action": "SCMP_ACT_ERRNO"}]}));
    assert!(e.starts_with("linux.seccomp.syscalls[0].names[0]:"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NATIVE"]}));
    assert_eq!(
        e,
        "linux.seccomp.architectures[0]: string SCMP_ARCH_NATIVE is not a valid arch for seccomp"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["write"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].args[0].index:"),
        "{e}"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}));
    assert!(
        e.starts_with("linux.seccomp.defaultErrnoRet: errno 5000"),
        "{e}"
    );
}

#[test]
fn validate_accepts_errno_and_trace_values() {
    for v in [
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 0}),
        json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 4242}),
        json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_RISCV64"]}),
        // As runc: errnoRet on an action without one is ignored (with a warning), and a
        // rule without names adds nothing.
        json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}),
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_KILL", "errnoRet": 5},
            {"names": [], "action": "SCMP_ACT_ALLOW"}]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
               "listenerMetadata": "m", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_LOG"}]}),
    ] {
        validate(&profile(v.clone())).unwrap_or_else(|e| panic!("{v}: {e:#}"));
    }
}

#[test]
fn unknown_names_are_refused_by_the_parser() {
    // Actions, operators, arches and flags are enums in oci-spec: a bad one fails parsing
    // (the config loader reports the JSON path), so validate never sees it.
    for v in [
        json!({"defaultAction": "SCMP_ACT_BOGUS"}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["write"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
    ] {
        assert!(
            serde_json::from_value::<LinuxSeccomp>(v.clone()).is_err(),
            "{v}"
        );
    }
}

#[test]
fn default_profile_parses_validates_and_builds() {
    let p: LinuxSeccomp = serde_json::from_str(DEFAULT_PROFILE).unwrap();
    validate(&p).unwrap();
    let names: Vec<&String> = p
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|s| s.names())
        .collect();
    for blocked in [
        "keyctl",
        "add_key",
        "request_key",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "bpf",
        "perf_event_open",
        "open_by_handle_at",
        "userfaultfd",
        "io_uring_setup",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "open_tree",
        "move_mount",
        "mount_setattr",
        "pivot_root",
        "swapon",
        "swapoff",
        "acct",
    ] {
        assert!(
            !names.iter().any(|n| *n == blocked),
            "{blocked} must not be allowed"
        );
    }
    // Every name is known to the linked libseccomp: no warnings on each container start.
    for n in &names {
        assert!(
            ScmpSyscall::from_name(n).is_ok(),
            "libseccomp does not know {n}"
        );
    }
    let f = build(&p).unwrap();
    // The kernel takes at most 4096 instructions.
    assert!(f.program.len() <= 4096, "{} instructions", f.program.len());
}

#[test]
fn conditions_are_anded_unless_an_argument_repeats() {
    let p = profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["write"],
        "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 0, "op": "SCMP_CMP_NE"},
            {"index": 1, "value": 255, "valueTwo": 7, "op": "SCMP_CMP_MASKED_EQ"}]}]}),
    );
    let sc = &p.syscalls().as_ref().unwrap()[0];
    let (sets, split) = condition_sets(sc.args().as_ref().unwrap());
    assert!(!split);
    assert_eq!(sets.len(), 1);
    assert_eq!(
        sets[0][2],
        ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(255), 7)
    );
    let p = profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["write"],
        "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 2, "op": "SCMP_CMP_GE"},
            {"index": 0, "value": 9, "op": "SCMP_CMP_LE"}]}]}),
    );
    let sc = &p.syscalls().as_ref().unwrap()[0];
    let (sets, split) = condition_sets(sc.args().as_ref().unwrap());
    assert!(split);
    assert_eq!(sets.len(), 2);
    build(&p).unwrap();
}

#[test]
fn write_rule_with_two_conditions_blocks_only_when_both_hold() {
    let (_ra, wa) = pipe();
    let (_rb, wb) = pipe();
    let (a, b) = (wa.as_raw_fd(), wb.as_raw_fd());
    let p = profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["write"],
        "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": a, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 0, "op": "SCMP_CMP_NE"}]}]}),
    );
    let got = filtered(p, move || (write_fd(a, 1), write_fd(a, 0), write_fd(b, 1)));
    assert_eq!(got, (Err(libc::EPERM), Ok(0), Ok(1)));
}

#[test]
fn repeated_argument_conditions_become_separate_rules() {
    let (_ra, wa) = pipe();
    let (_rb, wb) = pipe();
    let (_rc, wc) = pipe();
    let (a, b, c) = (wa.as_raw_fd(), wb.as_raw_fd(), wc.as_raw_fd());
    let p = profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["write"],
        "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EBADE, "args": [
            {"index": 0, "value": a, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": b, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let got = filtered(p, move || (write_fd(a, 1), write_fd(b, 1), write_fd(c, 1)));
    assert_eq!(got, (Err(libc::EBADE), Err(libc::EBADE), Ok(1)));
}

#[test]
fn default_errno_ret_and_enosys_for_newer_syscalls() {
    let p = profile(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENXIO,
        "syscalls": [{"names": THREAD_BASICS, "action": "SCMP_ACT_ALLOW"}]}),
    );
    let got = filtered(p, || {
        (
            sys(libc::SYS_getpid, [0; 3]).is_ok(),
            sys(libc::SYS_getppid, [0; 3]),
            sys(libc::SYS_clone3, [0; 3]),
            sys(libc::SYS_pidfd_open, [0, 0, 0]),
        )
    });
    assert_eq!(
        got,
        (true, Err(libc::ENXIO), Err(libc::ENOSYS), Err(libc::ENOSYS))
    );
}

#[test]
fn default_profile_blocks_what_docker_blocks() {
    let p: LinuxSeccomp = serde_json::from_str(DEFAULT_PROFILE).unwrap();
    let got = filtered(p, || {
        let unix = sys(
            libc::SYS_socket,
            [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0],
        );
        if let Ok(fd) = unix {
            // SAFETY: closing the socket this closure just made.
            unsafe { libc::close(fd as i32) };
        }
        vec![
            ("getpid", sys(libc::SYS_getpid, [0; 3]).map(|_| 0)),
            (
                "unshare",
                sys(libc::SYS_unshare, [libc::CLONE_NEWUSER as u64, 0, 0]),
            ),
            ("keyctl", sys(libc::SYS_keyctl, [0, 0, 0])),
            ("add_key", sys(libc::SYS_add_key, [0, 0, 0])),
            ("mount", sys(libc::SYS_mount, [0, 0, 0])),
            ("umount2", sys(libc::SYS_umount2, [0, 0, 0])),
            ("setns", sys(libc::SYS_setns, [u64::MAX, 0, 0])),
            ("bpf", sys(libc::SYS_bpf, [u64::MAX, 0, 0])),
            (
                "open_by_handle_at",
                sys(libc::SYS_open_by_handle_at, [0, 0, 0]),
            ),
            ("io_uring_setup", sys(libc::SYS_io_uring_setup, [0, 0, 0])),
            ("fsopen", sys(libc::SYS_fsopen, [0, 0, 0])),
            ("clone3", sys(libc::SYS_clone3, [0, 0, 0])),
            // CLONE_THREAD without CLONE_SIGHAND: EINVAL when the filter lets it through.
            (
                "clone ns",
                sys(
                    libc::SYS_clone,
                    [(libc::CLONE_NEWNS | libc::CLONE_THREAD) as u64, 0, 0],
                ),
            ),
            (
                "clone plain",
                sys(libc::SYS_clone, [libc::CLONE_THREAD as u64, 0, 0]),
            ),
            (
                "personality query",
                sys(libc::SYS_personality, [0xffff_ffff, 0, 0]).map(|_| 0),
            ),
            (
                "personality other",
                sys(libc::SYS_personality, [0x0040000, 0, 0]),
            ),
            (
                "socket vsock",
                sys(
                    libc::SYS_socket,
                    [libc::AF_VSOCK as u64, libc::SOCK_STREAM as u64, 0],
                ),
            ),
            ("socket unix", unix.map(|_| 0)),
        ]
    });
    let want = |n: &str| match n {
        "getpid" | "personality query" | "socket unix" => Ok(0),
        "clone3" => Err(libc::ENOSYS),
        "clone plain" => Err(libc::EINVAL),
        _ => Err(libc::EPERM),
    };
    for (n, r) in got {
        assert_eq!(r, want(n), "{n}");
    }
}

#[test]
fn notify_rule_returns_the_listener_fd() {
    let p = profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/nonexistent",
        "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let fd = std::thread::spawn(move || {
        let filter = build(&p).unwrap();
        // SAFETY: sets no_new_privs on this thread only; no pointers.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            0
        );
        load(filter).unwrap()
    })
    .join()
    .unwrap()
    .expect("a listener fd");
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert!(target.to_string_lossy().contains("seccomp"), "{target:?}");
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
}

#[test]
fn process_state_wraps_the_container_state() {
    let state = r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;
    let v: serde_json::Value =
        serde_json::from_str(&notify::process_state("m=1", state).unwrap()).unwrap();
    assert_eq!(v["ociVersion"], "1.2.0");
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert_eq!(v["pid"], 42);
    assert_eq!(v["metadata"], "m=1");
    assert_eq!(v["state"]["id"], "c1");
    let v: serde_json::Value =
        serde_json::from_str(&notify::process_state("", state).unwrap()).unwrap();
    assert!(v.get("metadata").is_none());
    assert!(notify::process_state("", r#"{"id":"x"}"#).is_err());
}

#[test]
fn send_notify_fd_passes_state_and_fd() {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::io::{IoSliceMut, Read};
    use std::os::unix::net::UnixListener;
    let dir = std::env::temp_dir().join(format!("paddock-seccomp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (r, w) = pipe();
    let state = r#"{"ociVersion":"1.3.0","id":"c1","status":"creating","pid":7,"bundle":"/b"}"#;
    {
        let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        send_notify_fd_over(&s, "meta", state, w.as_fd()).unwrap();
    }
    drop(w);
    let (mut conn, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 65536];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let m = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let fds: Vec<i32> = m
            .cmsgs()
            .unwrap()
            .filter_map(|c| match c {
                ControlMessageOwned::ScmRights(f) => Some(f),
                _ => None,
            })
            .flatten()
            .collect();
        (m.bytes, fds)
    };
    let mut data = buf[..n].to_vec();
    conn.read_to_end(&mut data).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert_eq!(v["metadata"], "meta");
    assert_eq!(fds.len(), 1);
    // The received fd is the pipe's write end: writing through it reaches `r`.
    assert_eq!(write_fd(fds[0], 1), Ok(1));
    // SAFETY: closing the fd we just received.
    unsafe { libc::close(fds[0]) };
    let mut one = [0u8; 1];
    assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut one).unwrap(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
