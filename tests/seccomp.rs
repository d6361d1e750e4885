//! linux.seccomp (security.md T26-T28): the default profile in init and exec, ANDed
//! argument conditions, defaultErrnoRet, unknown names, validation, and the notify agent.
mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::thread;
use std::time::{Duration, Instant};

use common::{Bundle, Env};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

fn default_profile() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/seccomp-profiles/default.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn with_profile(b: &mut Bundle, profile: Value) {
    b.config(|c| c["linux"]["seccomp"] = profile);
}

fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} not in {status}"))
}

/// Without seccomp, `unshare -U` needs no capability: it makes a good probe.
const PROBE: &str = "cat /proc/self/status; unshare -U true && echo unshare=ok; \
                     hostname h2 || echo hostname=blocked";

#[test]
fn default_profile_is_enforced_in_init() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", PROBE]);
    with_profile(&mut b, default_profile());
    let out = env.run(&b, &env.id("sc-init")).success();
    assert_eq!(status_field(&out.stdout, "Seccomp:"), "2", "{out:?}");
    assert_eq!(status_field(&out.stdout, "NoNewPrivs:"), "1", "{out:?}");
    assert!(!out.stdout.contains("unshare=ok"), "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
    assert!(out.stdout.contains("hostname=blocked"), "{out:?}");
}

#[test]
fn without_seccomp_the_probe_succeeds() {
    // The control for the test above: the same probe with no profile.
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", PROBE]);
    b.config(|c| {
        c["linux"].as_object_mut().unwrap().remove("seccomp");
    });
    let out = env.run(&b, &env.id("sc-none")).success();
    assert_eq!(status_field(&out.stdout, "Seccomp:"), "0", "{out:?}");
    if unprivileged_userns_allowed() {
        assert!(out.stdout.contains("unshare=ok"), "{out:?}");
    }
}

/// False where the host forbids unprivileged user namespaces (Ubuntu's AppArmor knob,
/// or max_user_namespaces = 0): then the probe fails even without seccomp.
fn unprivileged_userns_allowed() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").map_or(true, |v| v == "0")
        && read("/proc/sys/user/max_user_namespaces").map_or(true, |v| v != "0")
}

#[test]
fn default_profile_is_enforced_in_exec() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    with_profile(&mut b, default_profile());
    let id = env.id("sc-exec");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    let out = env
        .paddock(&["exec", &id, "cat", "/proc/self/status"])
        .success();
    assert_eq!(status_field(&out.stdout, "Seccomp:"), "2", "{out:?}");
    let out = env.paddock(&["exec", &id, "unshare", "-U", "true"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
    env.paddock(&["kill", &id, "KILL"]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
}

#[test]
fn profile_applies_without_no_new_privileges() {
    // Loaded while init still has CAP_SYS_ADMIN, before the capabilities are dropped.
    let env = Env::new();
    let mut b = env.bundle(&["cat", "/proc/self/status"]);
    with_profile(&mut b, default_profile());
    b.config(|c| c["process"]["noNewPrivileges"] = false.into());
    let out = env.run(&b, &env.id("sc-nnp0")).success();
    assert_eq!(status_field(&out.stdout, "Seccomp:"), "2", "{out:?}");
    assert_eq!(status_field(&out.stdout, "NoNewPrivs:"), "0", "{out:?}");
}

#[test]
fn a_profile_that_denies_runtime_syscalls_still_starts_the_program() {
    // Older profiles (like the OCI validation suite's) lack close_range; without
    // no_new_privs the filter is loaded before init's own last steps, which must
    // therefore not need it.
    for nnp in [false, true] {
        let env = Env::new();
        let mut b = env.bundle(&["echo", "started"]);
        with_profile(
            &mut b,
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
                "names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]}),
        );
        b.config(|c| c["process"]["noNewPrivileges"] = nnp.into());
        let out = env.run(&b, &env.id("sc-cr")).success();
        assert!(out.stdout.contains("started"), "nnp={nnp}: {out:?}");
    }
}

fn write_rule(fd: u64) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
    "names": ["write"], "action": "SCMP_ACT_ERRNO",
    "args": [
        {"index": 0, "value": fd, "op": "SCMP_CMP_EQ"},
        {"index": 2, "value": 0, "op": "SCMP_CMP_NE"}
    ]}]})
}

#[test]
fn argument_conditions_are_anded() {
    // T27 (CVE-2017-18367): "fd == 2 && count != 0" must leave stdout alone. `cat` of a
    // missing file reports on fd 2 itself (`>&2` would write through fd 1).
    let env = Env::new();
    let script = "echo to-out; cat /missing-marker; echo end";
    let mut b = env.bundle(&["sh", "-c", script]);
    with_profile(&mut b, write_rule(2));
    let out = env.run(&b, &env.id("sc-and2"));
    assert!(
        out.stdout.contains("to-out") && out.stdout.contains("end"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("missing-marker"), "{out:?}");

    let mut b = env.bundle(&["sh", "-c", script]);
    with_profile(&mut b, write_rule(1));
    let out = env.run(&b, &env.id("sc-and1"));
    assert!(!out.stdout.contains("to-out"), "{out:?}");
    assert!(out.stderr.contains("missing-marker"), "{out:?}");
}

#[test]
fn default_errno_ret_is_returned_for_blocked_calls() {
    // T28: defaultErrnoRet 6 (ENXIO) for a call the profile does not allow.
    let env = Env::new();
    let mut p = default_profile();
    p["defaultErrnoRet"] = 6.into();
    let mut b = env.bundle(&["sh", "-c", "hostname h2; echo rc=$?"]);
    with_profile(&mut b, p);
    let out = env.run(&b, &env.id("sc-enxio")).success();
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    assert!(out.stderr.contains("No such device or address"), "{out:?}");
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "mkdir /tmp/d; echo rc=$?"]);
    with_profile(
        &mut b,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
            "names": ["no_such_syscall_42", "mkdir", "mkdirat"],
            "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}),
    );
    let out = env.run(&b, &env.id("sc-unknown")).success();
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
}

#[test]
fn invalid_profiles_fail_create_naming_the_field() {
    let env = Env::new();
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}]}),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index: syscalls only have up to 6 arguments",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NATIVE"]}),
            "string SCMP_ARCH_NATIVE is not a valid arch for seccomp",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
            "linux.seccomp.flags[0]: seccomp flag SECCOMP_FILTER_FLAG_BOGUS is not known",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
            "linux.seccomp.defaultAction: string SCMP_ACT_NOPE is not a valid action for seccomp",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
            "linux.seccomp.architectures[0]: string SCMP_ARCH_VAX is not a valid arch for seccomp",
        ),
    ];
    for (profile, field) in cases {
        let mut b = env.bundle(&["true"]);
        with_profile(&mut b, profile.clone());
        let id = env.id("sc-bad");
        let out = env.create(&b, &id).fails_with_one_line();
        assert!(out.stderr.contains(field), "{profile}: {out:?}");
        assert!(!env.root.join(&id).exists(), "{profile}: state left");
    }
}

/// Accepts one agent connection (bounded wait): the JSON it got and the fds.
fn accept_agent(listener: UnixListener) -> Option<(Value, Vec<OwnedFd>)> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    };
    conn.set_nonblocking(false).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let m = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fds = Vec::new();
    for c in m.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(f) = c {
            // SAFETY: fds we just received and own.
            fds.extend(f.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let n = m.bytes;
    let mut data = buf[..n].to_vec();
    conn.read_to_end(&mut data).unwrap();
    Some((serde_json::from_slice(&data).unwrap(), fds))
}

#[test]
fn notify_listener_gets_state_and_fd_and_never_the_container() {
    let env = Env::new();
    let sock = env.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = thread::spawn(move || {
        // Closing the listener fd at once makes notified syscalls fail with ENOSYS.
        accept_agent(listener).map(|(v, fds)| (v, fds.len()))
    });
    let mut b = env.bundle(&["sh", "-c", "mkdir /tmp/n; echo rc=$?; ls -l /proc/self/fd"]);
    with_profile(
        &mut b,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "listenerPath": sock.to_str().unwrap(), "listenerMetadata": "meta-1",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let id = env.id("sc-notify");
    let out = env.run(&b, &id).success();
    let (msg, nfds) = agent
        .join()
        .unwrap()
        .expect("the runtime never connected to the agent");
    assert_eq!(nfds, 1, "{msg}");
    assert_eq!(msg["fds"], json!(["seccompFd"]), "{msg}");
    assert_eq!(msg["metadata"], "meta-1", "{msg}");
    assert!(msg["pid"].as_i64().unwrap_or(0) > 0, "{msg}");
    assert_eq!(msg["state"]["id"], id.as_str(), "{msg}");
    assert!(msg["ociVersion"].is_string(), "{msg}");
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    assert!(
        !out.stdout.contains("seccomp"),
        "listener fd leaked: {out:?}"
    );
}
