//! Parity cases for `linux.seccomp`: the same `runc spec` bundle and profile through
//! Debian's runc and through paddock. runc 1.1.5 refuses every `flags` entry ("seccomp
//! flags are not yet supported by runc"); runc 1.5 takes them, so the flags cases
//! assert paddock's 1.5 behaviour alone.
mod common;

use common::parity::{assert_same, assert_same_code, side_by_side, Rt};
use common::{Bundle, Env};
use serde_json::{json, Value};

fn default_profile() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/seccomp-profiles/default.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn with_profile(env: &Env, script: &str, profile: Value) -> Bundle {
    let mut b = env.runc_spec_bundle(&["sh", "-c", script]);
    b.config(|c| {
        c["linux"]["seccomp"] = profile;
    });
    b
}

/// setns is x86_64 syscall 308; busybox's `nsenter` calls it.
const NR_SETNS: i32 = 308;

/// The default profile's rules cut down to the syscalls numbered below setns (enough for
/// busybox and both runtimes' last steps), so that setns is "newer than the profile".
fn profile_below_setns(default_action: &str) -> Value {
    let below = |n: &Value| {
        libseccomp::ScmpSyscall::from_name(n.as_str().unwrap())
            .map(i32::from)
            .is_ok_and(|nr| nr > 0 && nr < NR_SETNS)
    };
    let mut p = default_profile();
    p["defaultAction"] = default_action.into();
    p.as_object_mut().unwrap().remove("defaultErrnoRet");
    for rule in p["syscalls"].as_array_mut().unwrap() {
        rule["names"].as_array_mut().unwrap().retain(below);
    }
    p
}

const NSENTER: &str = "nsenter --mount=/proc/self/ns/mnt true 2>&1; echo rc=$?";

#[test]
fn the_default_profile_runs_a_container() {
    let env = Env::new();
    let b = with_profile(
        &env,
        "echo ok; grep '^Seccomp:' /proc/self/status",
        default_profile(),
    );
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("default profile", &outs);
    assert_eq!(outs[1].stdout, "ok\nSeccomp:\t2\n");
}

#[test]
fn a_denied_syscall_gets_the_configured_errno() {
    let env = Env::new();
    let rule = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
        "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]});
    let b = with_profile(&env, "mkdir /tmp/d 2>&1; echo rc=$?", rule);
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("errnoRet 13", &outs);
    assert!(outs[1].stdout.contains("Permission denied"), "{outs:?}");

    let mut p = default_profile();
    p["defaultErrnoRet"] = 6.into();
    let b = with_profile(&env, "hostname h2 2>&1; echo rc=$?", p);
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("defaultErrnoRet 6", &outs);
    assert!(
        outs[1].stdout.contains("No such device or address"),
        "{outs:?}"
    );
}

#[test]
fn a_syscall_newer_than_the_profile_gets_enosys() {
    // The stub fronts every refusing default action; with a permissive one (LOG) the
    // call reaches the kernel, which refuses setns without CAP_SYS_ADMIN (EPERM).
    let env = Env::new();
    for (default, want) in [
        ("SCMP_ACT_ERRNO", "Function not implemented"),
        ("SCMP_ACT_KILL_PROCESS", "Function not implemented"),
        ("SCMP_ACT_LOG", "Operation not permitted"),
    ] {
        let b = with_profile(&env, NSENTER, profile_below_setns(default));
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        assert_same(default, &outs);
        assert!(outs[1].stdout.contains(want), "{default}: {outs:?}");
        assert!(outs[1].stdout.ends_with("rc=1\n"), "{default}: {outs:?}");
    }
}

#[test]
fn a_bad_profile_fails_in_both_with_exit_1() {
    let env = Env::new();
    let allow = |extra: Value| {
        let mut p = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    // (profile, words both runtimes print)
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_FOO"}),
            "string SCMP_ACT_FOO is not a valid action for seccomp",
        ),
        (
            allow(json!({"architectures": ["SCMP_ARCH_NATIVE"]})),
            "string SCMP_ARCH_NATIVE is not a valid arch for seccomp",
        ),
        (
            allow(json!({"architectures": ["SCMP_ARCH_VAX"]})),
            "string SCMP_ARCH_VAX is not a valid arch for seccomp",
        ),
        (
            allow(
                json!({"syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}),
            ),
            "string SCMP_CMP_FOO is not a valid operator for seccomp",
        ),
        (
            allow(
                json!({"syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            ),
            "syscalls only have up to 6 arguments (7 given)",
        ),
    ];
    for (profile, words) in cases {
        let b = with_profile(&env, "echo never", profile.clone());
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        assert_same(&profile.to_string(), &outs);
        assert_eq!(outs[1].code, 1, "{profile}");
        for (rt, out) in [Rt::Runc, Rt::Paddock].iter().zip(&outs) {
            assert!(out.stderr.contains(words), "{profile}: {rt:?} {out:?}");
        }
    }
}

#[test]
fn what_runc_ignores_in_a_profile_runs() {
    // errnoRet on an action without one, and a rule without names: runc applies the
    // rest of the profile and runs the container.
    let env = Env::new();
    let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_LOG", "errnoRet": 5},
        {"names": [], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    let b = with_profile(&env, "pwd; mkdir /tmp/d 2>&1; echo rc=$?", p);
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("ignored fields", &outs);
    assert!(
        outs[1].stdout.contains("Operation not permitted"),
        "{outs:?}"
    );
}

#[test]
fn a_section_without_default_action_or_rules_means_no_seccomp() {
    let env = Env::new();
    for profile in [json!({}), json!({"defaultAction": "", "syscalls": []})] {
        let b = with_profile(&env, "grep '^Seccomp:' /proc/self/status", profile.clone());
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        assert_same(&profile.to_string(), &outs);
        assert_eq!(outs[1].stdout, "Seccomp:\t0\n", "{profile}");
    }
}

#[test]
fn flags_runc_1_5_knows_are_applied() {
    // runc 1.5: TSYNC is accepted (nothing to synchronise), LOG and SPEC_ALLOW applied.
    let env = Env::new();
    for flags in [
        json!([]),
        json!(["SECCOMP_FILTER_FLAG_TSYNC"]),
        json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
    ] {
        let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
        let b = with_profile(&env, "mkdir /tmp/d 2>&1; echo rc=$?", p);
        let out = env.rt_run(Rt::Paddock, &b).success();
        assert!(
            out.stdout.contains("Operation not permitted"),
            "{flags}: {out:?}"
        );
    }
}

#[test]
fn flags_the_host_cannot_apply_or_nobody_knows_fail() {
    // Both runtimes refuse; the words are runc 1.5's (1.1.5 refuses every flag).
    let env = Env::new();
    for (flag, words) in [
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            "error adding WaitKill flag to seccomp filter: SetWaitKill requires libseccomp >= 2.6.0 and API level >= 7",
        ),
        (
            "SECCOMP_FILTER_FLAG_BOGUS",
            "seccomp flag SECCOMP_FILTER_FLAG_BOGUS is not known to paddock",
        ),
    ] {
        let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]});
        let b = with_profile(&env, "echo never", p);
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        assert_same_code(flag, &outs);
        assert_eq!(outs[1].code, 1, "{flag}");
        assert!(outs[1].stderr.contains(words), "{flag}: {outs:?}");
        assert!(outs[1].stdout.is_empty(), "{flag}: {outs:?}");
    }
}

/// A static program that makes raw syscall N (argv[1]) and prints "<result> <errno>".
const SYSNO_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long r = syscall(atol(argv[1]), 0, 0, 0, 0, 0);
    printf("%ld %d\n", r, r < 0 ? errno : 0);
    return 0;
}
"#;

#[test]
fn a_syscall_newer_than_libseccomp_gets_enosys_too() {
    // mseal (462) is newer than the libseccomp both runtimes link (2.5.4), so no rule
    // can name it; the BPF stub still answers ENOSYS (38) where the default is EPERM.
    let env = Env::new();
    let b = with_profile(&env, "/sysno 462", default_profile());
    let src = env.dir.join("sysno.c");
    std::fs::write(&src, SYSNO_C).unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(b.rootfs.join("sysno"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(cc.status.success(), "cc: {cc:?}");
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("mseal", &outs);
    assert_eq!(outs[1].stdout, "-1 38\n");
}
