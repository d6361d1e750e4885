//! `linux.seccomp`: validate the profile, build it with libseccomp, put runc's ENOSYS
//! stub in front, load it as the last step before execve, and hand a notify listener
//! fd to the seccomp agent.
//!
//! Semantics, matching runc 1.5:
//! - `SCMP_ACT_KILL` is KILL_THREAD; ERRNO and TRACE take `errnoRet` (default EPERM);
//!   the other actions ignore it (with a warning here).
//! - The conditions of one rule are ANDed (one rule). libseccomp refuses two conditions
//!   on the same argument in one rule, so, as runc does, a rule with a repeated argument
//!   index is added as one rule per condition: the action then applies when ANY of its
//!   conditions holds. A warning says so.
//! - Syscall names libseccomp does not know are skipped, with a debug line as in runc
//!   (profiles name syscalls newer than the library; the ENOSYS stub covers those).
//! - A rule whose action equals the default action is skipped (libseccomp refuses it).
//! - no_new_privs is not set here (the runtime sets it when the config asks); libseccomp
//!   only generates the program, it never loads it.
//! - The filter is exported from libseccomp as BPF and loaded with seccomp(2) (prctl
//!   when no flag is set), as runc does, so that the ENOSYS stub (enosys.rs) runs first.

mod enosys;
mod flags;
pub mod names;
pub mod notify;
#[cfg(test)]
mod stub_tests;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompOperator as Op,
    LinuxSyscall,
};

use crate::logger;

pub use flags::supported_flags;
pub use notify::send_notify_fd_over;

/// The largest errno the kernel returns from SECCOMP_RET_ERRNO (it clamps above).
const MAX_ERRNO: u32 = 4095;
/// Syscall arguments are numbered 0..=5.
const MAX_ARG_INDEX: usize = 5;
/// Syscalls the runtime itself makes after the filter is loaded to hand the listener fd
/// to its parent; notifying them would wait for an agent that has not got the fd yet.
const NO_NOTIFY: &[&str] = &["write", "send", "sendto", "sendmsg"];
/// runc turns on binary-tree lookups only for profiles larger than this.
const OPTIMIZE_ABOVE: usize = 32;

/// A finished BPF program and the seccomp(2) flags to load it with.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// Checks everything that does not depend on the container; each error names the field.
/// (oci-spec has already refused unknown action, operator, arch and flag names; the
/// config loader words those as runc does, see names.rs.)
pub fn validate(s: &LinuxSeccomp) -> Result<()> {
    let f = "linux.seccomp";
    if s.default_action() == Action::ScmpActNotify {
        bail!("{f}.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action");
    }
    action(s.default_action(), s.default_errno_ret())
        .with_context(|| format!("{f}.defaultErrnoRet"))?;
    if s.default_errno_ret().is_some() && !takes_errno(s.default_action()) {
        logger::warn(&format!(
            "{f}.defaultErrnoRet: ignored for {} (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return it)",
            s.default_action()
        ));
    }
    for (i, a) in s
        .architectures()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        scmp_arch(*a).with_context(|| format!("{f}.architectures[{i}]"))?;
    }
    flags::filter_flags(s)?;
    let has_listener = s
        .listener_path()
        .as_ref()
        .is_some_and(|p| !p.as_os_str().is_empty());
    if s.listener_metadata().is_some() && !has_listener {
        bail!("{f}.listenerMetadata: set without listenerPath");
    }
    for (i, sc) in s
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        validate_syscall(sc, &format!("{f}.syscalls[{i}]"))?;
        if sc.action() == Action::ScmpActNotify {
            if !has_listener {
                bail!(
                    "{f}.syscalls[{i}].action: SCMP_ACT_NOTIFY requires linux.seccomp.listenerPath"
                );
            }
            let api = libseccomp::get_api();
            if api < 6 {
                bail!("{f}.syscalls[{i}].action: seccomp notify unsupported: API level: got {api}, want at least 6. Please try with libseccomp >= 2.5.0 and Linux >= 5.7");
            }
        }
    }
    Ok(())
}

fn validate_syscall(sc: &LinuxSyscall, f: &str) -> Result<()> {
    for (j, n) in sc.names().iter().enumerate() {
        if n.is_empty() || n.contains('\0') {
            bail!("{f}.names[{j}]: invalid syscall name {n:?}");
        }
        if sc.action() == Action::ScmpActNotify && NO_NOTIFY.contains(&n.as_str()) {
            bail!("{f}.action: SCMP_ACT_NOTIFY cannot be used for the {n} syscall (the runtime needs it to pass the listener fd)");
        }
    }
    action(sc.action(), sc.errno_ret()).with_context(|| format!("{f}.errnoRet"))?;
    if sc.errno_ret().is_some() && !takes_errno(sc.action()) {
        logger::warn(&format!(
            "{f}.errnoRet: ignored for {} (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return it)",
            sc.action()
        ));
    }
    for (j, a) in sc.args().as_deref().unwrap_or_default().iter().enumerate() {
        if a.index() > MAX_ARG_INDEX {
            bail!(
                "{f}.args[{j}].index: syscalls only have up to 6 arguments ({} given)",
                a.index()
            );
        }
    }
    Ok(())
}

fn takes_errno(a: Action) -> bool {
    matches!(a, Action::ScmpActErrno | Action::ScmpActTrace)
}

/// The libseccomp action; `errno_ret` is used by ERRNO and TRACE only, as in runc.
fn action(a: Action, errno_ret: Option<u32>) -> Result<ScmpAction> {
    let e = errno_ret.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        Action::ScmpActErrno => {
            if e > MAX_ERRNO {
                bail!("errno {e} is out of range (0 to {MAX_ERRNO})");
            }
            ScmpAction::Errno(e as i32)
        }
        Action::ScmpActTrace => {
            let v = u16::try_from(e)
                .map_err(|_| anyhow::anyhow!("trace value {e} is out of range (0 to 65535)"))?;
            ScmpAction::Trace(v)
        }
        Action::ScmpActKill | Action::ScmpActKillThread => ScmpAction::KillThread,
        Action::ScmpActKillProcess => ScmpAction::KillProcess,
        Action::ScmpActTrap => ScmpAction::Trap,
        Action::ScmpActLog => ScmpAction::Log,
        Action::ScmpActAllow => ScmpAction::Allow,
        Action::ScmpActNotify => ScmpAction::Notify,
    })
}

fn scmp_arch(a: Arch) -> Result<ScmpArch> {
    Ok(match a {
        Arch::ScmpArchNative => bail!("string SCMP_ARCH_NATIVE is not a valid arch for seccomp"),
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    })
}

fn cmp(a: &LinuxSeccompArg) -> ScmpArgCompare {
    // For MASKED_EQ, value is the mask and valueTwo the value compared (as in runc).
    let (op, datum) = match a.op() {
        Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
        Op::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
        Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
        Op::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
        Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
        Op::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
        Op::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
    };
    ScmpArgCompare::new(a.index() as u32, op, datum)
}

/// The condition sets to add for one rule: all conditions together (ANDed), or, when an
/// argument index repeats, one set per condition (see the module comment).
fn condition_sets(args: &[LinuxSeccompArg]) -> (Vec<Vec<ScmpArgCompare>>, bool) {
    let mut seen = HashSet::new();
    let repeated = args.iter().any(|a| !seen.insert(a.index()));
    let conds = args.iter().map(cmp);
    if repeated {
        (conds.map(|c| vec![c]).collect(), true)
    } else {
        (vec![conds.collect()], false)
    }
}

/// Builds the program in memory; nothing is loaded into the kernel. `s` has passed
/// `validate` already: spec::load checks it, and exec uses the copy saved at create.
pub fn build(s: &LinuxSeccomp) -> Result<Filter> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).context("linux.seccomp.defaultAction")?;
    let mut archs = Vec::new();
    for a in s.architectures().as_deref().unwrap_or_default() {
        let arch = scmp_arch(*a).context("linux.seccomp.architectures")?;
        ctx.add_arch(arch)
            .with_context(|| format!("linux.seccomp.architectures: add {a}"))?;
        archs.push(arch);
    }
    let mut flags = flags::filter_flags(s)?;
    let syscalls = s.syscalls().as_deref().unwrap_or_default();
    let names: Vec<&str> = syscalls
        .iter()
        .flat_map(|sc| sc.names().iter().map(String::as_str))
        .collect();
    if names.len() > OPTIMIZE_ABOVE {
        // A binary tree keeps lookups short; an old libseccomp without it still works.
        let _ = ctx.set_ctl_optimize(2);
    }
    for (i, sc) in syscalls.iter().enumerate() {
        let f = format!("linux.seccomp.syscalls[{i}]");
        let act = action(sc.action(), sc.errno_ret()).with_context(|| f.clone())?;
        if act == default {
            continue;
        }
        if sc.action() == Action::ScmpActNotify {
            flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        }
        let (sets, split) = condition_sets(sc.args().as_deref().unwrap_or_default());
        if split {
            logger::warn(&format!(
                "{f}: several conditions on one argument; added as separate rules, so the action applies when any one of them matches"
            ));
        }
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                logger::debug(&format!("{f}: unknown seccomp syscall {name:?} ignored"));
                continue;
            };
            for conds in &sets {
                ctx.add_rule_conditional(act, nr, conds)
                    .with_context(|| format!("{f}: add rule for {name}"))?;
            }
        }
    }
    let mut program = if wants_enosys(default) {
        enosys::stub(&enosys::Limits::find(&archs, &names))
    } else {
        Vec::new()
    };
    program.extend(export(&ctx)?);
    logger::debug(&format!("seccomp filter flags: {flags}"));
    Ok(Filter { program, flags })
}

/// runc's rule: the stub goes in front unless the default action lets calls through
/// (ALLOW, LOG, TRACE). A default of ERRNO(ENOSYS) already says the same.
fn wants_enosys(default: ScmpAction) -> bool {
    !matches!(
        default,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    ) && default != ScmpAction::Errno(libc::ENOSYS)
}

/// libseccomp's BPF program for `ctx`, read back through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    // SAFETY: a valid C string; a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("seccomp: memfd for the program");
    }
    // SAFETY: fd is new and owned by nothing else.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    ctx.export_bpf(&file)
        .context("seccomp: export the filter program")?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("seccomp: read the filter program")?;
    // struct sock_filter: u16 code, u8 jt, u8 jf, u32 k, in host byte order.
    Ok(bytes
        .chunks_exact(8)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// Loads the filter into the calling thread. Returns the listener fd when a rule uses
/// SCMP_ACT_NOTIFY. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn load(f: Filter) -> Result<Option<OwnedFd>> {
    let len = u16::try_from(f.program.len()).context("seccomp: the filter is too long")?;
    let prog = libc::sock_fprog {
        len,
        filter: f.program.as_ptr().cast_mut(),
    };
    let prog_ptr: *const libc::sock_fprog = &prog;
    let rc = if f.flags == 0 {
        // SAFETY: prog points to a valid program that outlives the call; the kernel copies it.
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                prog_ptr,
                0,
                0,
            )
        }
        .into()
    } else {
        // SAFETY: as above; the flags are the kernel's SECCOMP_FILTER_FLAG_* bits.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                f.flags,
                prog_ptr,
            )
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("seccomp: load the filter");
    }
    if f.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    let fd = i32::try_from(rc).context("seccomp: listener fd out of range")?;
    // SAFETY: the kernel made this fd (O_CLOEXEC) for this load and nothing else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}
