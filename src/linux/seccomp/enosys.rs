//! The ENOSYS stub runc puts in front of every filter whose default action refuses
//! (anything but ALLOW, LOG and TRACE): a syscall numbered above the highest one the
//! profile names, on an architecture the filter covers, returns ENOSYS instead of the
//! default action. libc then falls back to an older call (clone3 -> clone,
//! faccessat2 -> faccessat) as it would on an older kernel. The stub is plain BPF, so
//! it also covers syscalls newer than libseccomp's own table.
//!
//! Rules, as in runc: the architectures are the profile's plus the native one; the
//! highest number is taken over every name of every rule, whatever its action, names
//! unknown to libseccomp ignored; an architecture where no name resolves gets no check
//! (with a warning). On x86_64 the x32 ABI (bit 30 set in the number) has its own limit
//! when the profile lists SCMP_ARCH_X32, and otherwise goes straight to the filter. On
//! s390 and s390x syscall 0 (the multiplexer unknown numbers end up in) gets ENOSYS.

use std::collections::BTreeMap;

use libc::sock_filter;
use libseccomp::{ScmpArch, ScmpSyscall};

use crate::logger;

/// SECCOMP_RET_ERRNO | ENOSYS.
pub(super) const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// The x32 ABI marks its syscall numbers with this bit.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF opcodes (linux/filter.h); struct seccomp_data has nr at 0, arch at 4.
const LD_W_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

// AUDIT_ARCH_* (linux/audit.h): the values the kernel puts in seccomp_data.arch.
const AUDIT_X86_64: u32 = 0xc000_003e;
const AUDIT_S390: u32 = 0x0000_0016;
const AUDIT_S390X: u32 = 0x8000_0016;

/// The kernel's architecture value for a libseccomp one (x32 shares x86_64's), and the
/// name runc's messages use for it.
pub(super) fn audit_arch(a: ScmpArch) -> Option<(u32, &'static str)> {
    Some(match a {
        ScmpArch::X86 => (0x4000_0003, "x86"),
        ScmpArch::X8664 => (AUDIT_X86_64, "amd64"),
        ScmpArch::X32 => (AUDIT_X86_64, "x32"),
        ScmpArch::Arm => (0x4000_0028, "arm"),
        ScmpArch::Aarch64 => (0xc000_00b7, "arm64"),
        ScmpArch::Loongarch64 => (0xc000_0102, "loong64"),
        ScmpArch::Mips => (0x0000_0008, "mips"),
        ScmpArch::Mips64 => (0x8000_0008, "mips64"),
        ScmpArch::Mips64N32 => (0xa000_0008, "mips64n32"),
        ScmpArch::Mipsel => (0x4000_0008, "mipsel"),
        ScmpArch::Mipsel64 => (0xc000_0008, "mipsel64"),
        ScmpArch::Mipsel64N32 => (0xe000_0008, "mipsel64n32"),
        ScmpArch::Ppc => (0x0000_0014, "ppc"),
        ScmpArch::Ppc64 => (0x8000_0015, "ppc64"),
        ScmpArch::Ppc64Le => (0xc000_0015, "ppc64le"),
        ScmpArch::S390 => (AUDIT_S390, "s390"),
        ScmpArch::S390X => (AUDIT_S390X, "s390x"),
        ScmpArch::Riscv64 => (0xc000_00f3, "riscv64"),
        _ => return None,
    })
}

/// The highest named syscall per kernel architecture value; on x86_64 the x32 ABI
/// has its own entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Limits(BTreeMap<u32, Limit>);

#[derive(Debug, Default, PartialEq, Eq)]
struct Limit {
    native: Option<u32>,
    x32: Option<u32>,
}

impl Limits {
    /// `archs`: the profile's architectures (the native one is added); `names`: every
    /// syscall name in the profile.
    pub(super) fn find(archs: &[ScmpArch], names: &[&str]) -> Limits {
        let mut all = archs.to_vec();
        all.push(ScmpArch::native());
        let mut out = Limits::default();
        for arch in all {
            let Some((audit, arch_name)) = audit_arch(arch) else {
                continue;
            };
            let highest = names
                .iter()
                .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
                .map(i32::from)
                .filter(|nr| *nr > 0)
                .max();
            let Some(highest) = highest else {
                logger::warn(&format!("could not find any syscalls for arch {arch_name}"));
                continue;
            };
            let limit = out.0.entry(audit).or_default();
            let slot = if arch == ScmpArch::X32 {
                &mut limit.x32
            } else {
                &mut limit.native
            };
            *slot = Some(highest as u32);
        }
        out
    }
}

/// One stub instruction; jumps to the filter or to a section are resolved at the end.
enum Insn {
    Op(sock_filter),
    ToFilter,
    ToSection(usize),
}

fn op(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn::Op(sock_filter { code, jt, jf, k })
}

/// `jgt limit` -> ENOSYS, else on to the next instruction.
fn above(limit: u32, out: &mut Vec<Insn>) {
    out.push(op(JGT_K, 0, 1, limit));
    out.push(op(RET_K, 0, 0, RET_ENOSYS));
}

/// The stub: load the arch, jump to its section (or straight to the filter); each
/// section loads the syscall number and returns ENOSYS above the limit. Empty when no
/// architecture has a limit.
pub(super) fn stub(limits: &Limits) -> Vec<sock_filter> {
    if limits.0.is_empty() {
        return Vec::new();
    }
    let mut head = vec![op(LD_W_ABS, 0, 0, OFF_ARCH)];
    let mut sections = Vec::new();
    for (i, (audit, limit)) in limits.0.iter().enumerate() {
        head.push(op(JEQ_K, 0, 1, *audit));
        head.push(Insn::ToSection(i));
        let mut s = vec![op(LD_W_ABS, 0, 0, OFF_NR)];
        if *audit == AUDIT_S390 || *audit == AUDIT_S390X {
            s.push(op(JEQ_K, 0, 1, 0));
            s.push(op(RET_K, 0, 0, RET_ENOSYS));
        }
        if *audit == AUDIT_X86_64 {
            // Bit 30 set: an x32 call, checked against the x32 limit if there is one.
            let x32_len = if limit.x32.is_some() { 3 } else { 1 };
            s.push(op(JSET_K, 0, x32_len, X32_SYSCALL_BIT));
            if let Some(l) = limit.x32 {
                above(l, &mut s);
            }
            s.push(Insn::ToFilter);
        }
        if let Some(l) = limit.native {
            above(l, &mut s);
        }
        s.push(Insn::ToFilter);
        sections.push(s);
    }
    head.push(Insn::ToFilter);

    let mut starts = Vec::with_capacity(sections.len());
    let mut at = head.len();
    for s in &sections {
        starts.push(at);
        at += s.len();
    }
    let filter_start = at;
    let all: Vec<Insn> = head
        .into_iter()
        .chain(sections.into_iter().flatten())
        .collect();
    all.into_iter()
        .enumerate()
        .map(|(pc, insn)| {
            let ja = |target: usize| sock_filter {
                code: JA,
                jt: 0,
                jf: 0,
                k: (target - pc - 1) as u32,
            };
            match insn {
                Insn::Op(f) => f,
                Insn::ToFilter => ja(filter_start),
                Insn::ToSection(i) => ja(starts[i]),
            }
        })
        .collect()
}
