//! The ENOSYS stub, the flags and runc's wording for names (tests.rs has the helpers).

use libseccomp::{ScmpArch, ScmpSyscall};
use serde_json::json;

use super::enosys::{stub, Limits};
use super::tests::{filtered, profile, sys, THREAD_BASICS};
use super::*;

/// mseal (x86_64): newer than the syscall table of the libseccomp paddock links.
const NR_MSEAL: libc::c_long = 462;

fn errno_profile(extra_allowed: &[&str]) -> LinuxSeccomp {
    let mut names: Vec<&str> = THREAD_BASICS.to_vec();
    names.extend_from_slice(extra_allowed);
    profile(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENXIO,
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}),
    )
}

#[test]
fn syscalls_above_the_profile_get_enosys_even_unknown_to_libseccomp() {
    assert!(
        ScmpSyscall::from(NR_MSEAL as i32)
            .get_name_by_arch(ScmpArch::X8664)
            .is_err(),
        "the test needs a syscall libseccomp does not know"
    );
    let got = filtered(errno_profile(&[]), || {
        (
            sys(libc::SYS_getppid, [0; 3]),
            sys(libc::SYS_clone3, [0; 3]),
            sys(libc::SYS_pidfd_open, [0; 3]),
            sys(NR_MSEAL, [0; 3]),
        )
    });
    assert_eq!(
        got,
        (
            Err(libc::ENXIO),
            Err(libc::ENOSYS),
            Err(libc::ENOSYS),
            Err(libc::ENOSYS)
        )
    );
}

#[test]
fn below_the_highest_named_syscall_the_default_action_stays() {
    // As runc: clone3 gets no special case; named below futex_waitv, it is refused
    // with the default errno, while mseal above it still gets ENOSYS.
    let got = filtered(errno_profile(&["futex_waitv"]), || {
        (sys(libc::SYS_clone3, [0; 3]), sys(NR_MSEAL, [0; 3]))
    });
    assert_eq!(got, (Err(libc::ENXIO), Err(libc::ENOSYS)));
}

#[test]
fn x32_has_its_own_limit_and_x86_64_still_works() {
    let p = profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": THREAD_BASICS, "action": "SCMP_ACT_ALLOW"}]}));
    let limits = Limits::find(
        &[ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32],
        THREAD_BASICS,
    );
    let text = format!("{limits:?}");
    // rseq is 334 on x86_64 and 386 on i386; x32 numbers carry bit 30 (0x40000000), and
    // x32's own set_robust_list (530) is its highest here.
    assert!(text.contains("native: Some(334)"), "{text}");
    assert!(text.contains("native: Some(386)"), "{text}");
    assert!(
        text.contains(&format!("x32: Some({})", 0x4000_0000u32 + 530)),
        "{text}"
    );
    let got = filtered(p, || {
        (
            sys(libc::SYS_getpid, [0; 3]).is_ok(),
            sys(libc::SYS_getppid, [0; 3]),
            sys(NR_MSEAL, [0; 3]),
        )
    });
    assert_eq!(got, (true, Err(libc::EPERM), Err(libc::ENOSYS)));
}

#[test]
fn the_stub_only_fronts_refusing_defaults() {
    for (a, want) in [
        (ScmpAction::Allow, false),
        (ScmpAction::Log, false),
        (ScmpAction::Trace(1), false),
        (ScmpAction::Errno(libc::ENOSYS), false),
        (ScmpAction::Errno(libc::EPERM), true),
        (ScmpAction::KillThread, true),
        (ScmpAction::KillProcess, true),
        (ScmpAction::Trap, true),
    ] {
        assert_eq!(wants_enosys(a), want, "{a:?}");
    }
    assert!(stub(&Limits::find(&[], &["no_such_syscall"])).is_empty());
    let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}));
    let with_stub = build(&errno_profile(&[])).unwrap().program.len();
    assert!(with_stub > build(&p).unwrap().program.len());
}

#[test]
fn flags_follow_runc() {
    let flags = |v: serde_json::Value| {
        let mut p = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        if !v.is_null() {
            p["flags"] = v;
        }
        flags::filter_flags(&profile(p)).unwrap()
    };
    // libseccomp reports API level 6 on this kernel: every flag oci-spec knows applies.
    assert!(libseccomp::get_api() >= 4);
    assert_eq!(flags(json!(null)), libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW);
    assert_eq!(flags(json!([])), 0);
    assert_eq!(flags(json!(["SECCOMP_FILTER_FLAG_TSYNC"])), 0);
    assert_eq!(
        flags(json!([
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
        ])),
        libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    let p = profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
        "flags": [], "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert_eq!(
        build(&p).unwrap().flags,
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
    assert!(flags::too_old("SetWaitKill", 7, "2.6.0", 6).ends_with(
        "requires libseccomp >= 2.6.0 and API level >= 7 (current version: 2.5.4, API level: 6)"
    ));
}

#[test]
fn names_runc_refuses_are_worded_as_runc_words_them() {
    let explain = |s: serde_json::Value| {
        let config = serde_json::to_vec(&json!({"linux": {"seccomp": s}})).unwrap();
        names::runc_reading(&config).map(|r| r.unwrap_err().to_string())
    };
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "FOO"]}),
         "linux.seccomp.flags[1]: seccomp flag FOO is not known to paddock"),
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
         "linux.seccomp.architectures[0]: string SCMP_ARCH_VAX is not a valid arch for seccomp"),
        (json!({"defaultAction": "SCMP_ACT_BOGUS"}),
         "linux.seccomp.defaultAction: string SCMP_ACT_BOGUS is not a valid action for seccomp"),
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "NOPE"}]}),
         "linux.seccomp.syscalls[0].action: string NOPE is not a valid action for seccomp"),
        (json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
         "linux.seccomp.syscalls[0].args[0].op: string SCMP_CMP_XX is not a valid operator for seccomp"),
    ];
    for (s, want) in cases {
        assert_eq!(explain(s).as_deref(), Some(want));
    }
    let e = explain(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}))
    .unwrap();
    assert!(
        e.starts_with("linux.seccomp.flags[0]: error adding WaitKill flag to seccomp filter: SetWaitKill requires libseccomp >= 2.6.0"),
        "{e}"
    );
    assert_eq!(explain(json!({"defaultAction": "SCMP_ACT_ALLOW"})), None);
}

#[test]
fn neither_default_action_nor_rules_means_no_seccomp() {
    for s in [
        json!({}),
        json!({"defaultAction": "", "syscalls": []}),
        json!({"flags": ["SECCOMP_FILTER_FLAG_BOGUS"], "syscalls": null}),
    ] {
        let config = serde_json::to_vec(&json!({"linux": {"seccomp": s, "x": 1}})).unwrap();
        let got = names::runc_reading(&config).unwrap().unwrap();
        let got: serde_json::Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(got, json!({"linux": {"x": 1}}), "{s}");
    }
    let config =
        json!({"linux": {"seccomp": {"syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW"}]}}});
    let e = names::runc_reading(&serde_json::to_vec(&config).unwrap()).unwrap();
    assert_eq!(
        e.unwrap_err().to_string(),
        "linux.seccomp.defaultAction: string  is not a valid action for seccomp"
    );
}

/// Runs the stub as the kernel would for (arch, nr): Some(return value), or None when it
/// falls through to the filter after it.
fn run_stub(prog: &[libc::sock_filter], arch: u32, nr: u32) -> Option<u32> {
    let (mut pc, mut acc) = (0usize, 0u32);
    while pc < prog.len() {
        let i = prog[pc];
        let jump = |cond: bool| usize::from(if cond { i.jt } else { i.jf });
        pc += 1 + match i.code {
            0x20 => {
                acc = if i.k == 0 { nr } else { arch };
                0
            }
            0x15 => jump(acc == i.k),
            0x25 => jump(acc > i.k),
            0x45 => jump(acc & i.k != 0),
            0x05 => i.k as usize,
            0x06 => return Some(i.k),
            c => panic!("unexpected opcode {c:#x}"),
        };
    }
    assert_eq!(pc, prog.len(), "jumped past the filter's first instruction");
    None
}

#[test]
fn the_stub_routes_each_architecture_to_its_limit() {
    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;
    const S390X: u32 = 0x8000_0016;
    const X32: u32 = 0x4000_0000;
    let names = ["read", "write", "rseq"];
    let all = [
        ScmpArch::X8664,
        ScmpArch::X86,
        ScmpArch::X32,
        ScmpArch::S390X,
    ];
    let prog = stub(&Limits::find(&all, &names));
    let enosys = Some(enosys::RET_ENOSYS);
    for (arch, nr, want) in [
        (X86_64, 0, None),
        (X86_64, 334, None),
        (X86_64, 335, enosys),
        (X86_64, 462, enosys),
        (X86_64, X32, None),
        (X86_64, X32 + 334, None),
        (X86_64, X32 + 335, enosys),
        (I386, 386, None),
        (I386, 387, enosys),
        // s390x: rseq is 383; syscall 0 is the multiplexer unknown numbers end in.
        (S390X, 0, enosys),
        (S390X, 383, None),
        (S390X, 384, enosys),
        (0x1234, 9999, None),
    ] {
        assert_eq!(run_stub(&prog, arch, nr), want, "arch {arch:#x} nr {nr}");
    }
    // Without SCMP_ARCH_X32 in the profile, x32 calls go straight to the filter.
    let prog = stub(&Limits::find(&[ScmpArch::X8664], &names));
    assert_eq!(run_stub(&prog, X86_64, X32 + 999), None);
    assert_eq!(run_stub(&prog, X86_64, 999), enosys);
}

#[test]
fn audit_arch_values_are_the_kernels() {
    // libseccomp's SCMP_ARCH_* tokens (oci-spec's enum values) are the AUDIT_ARCH_*
    // values, except x32's, which the kernel reports as x86_64.
    for a in [
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchArm,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchRiscv64,
    ] {
        let (audit, _) = enosys::audit_arch(scmp_arch(a).unwrap()).unwrap();
        assert_eq!(audit, a as u32, "{a}");
    }
    let (x32, name) = enosys::audit_arch(ScmpArch::X32).unwrap();
    assert_eq!((x32, name), (Arch::ScmpArchX86_64 as u32, "x32"));
}
