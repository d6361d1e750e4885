//! `linux.seccomp`: validate the profile, build it with libseccomp, load it as the last
//! step before execve, and hand a notify listener fd to the seccomp agent.
//!
//! Semantics, matching runc where the spec leaves room:
//! - `SCMP_ACT_KILL` is KILL_THREAD; ERRNO and TRACE take `errnoRet` (default EPERM).
//! - The conditions of one rule are ANDed (one `seccomp_rule_add_array` call). libseccomp
//!   refuses two conditions on the same argument in one rule (EINVAL), so, as runc does,
//!   a rule with a repeated argument index is added as one rule per condition: the action
//!   then applies when ANY of its conditions holds. A warning says so.
//! - Syscall names libseccomp does not know are skipped with a warning.
//! - A rule whose action equals the default action is skipped (libseccomp refuses it).
//! - no_new_privs is not set by libseccomp (the runtime sets it when the config asks).
//!
//! ENOSYS for syscalls newer than the profile: runc patches the generated BPF so that any
//! syscall numbered above the highest one the profile names returns ENOSYS, letting libc
//! fall back (clone3 -> clone, faccessat2 -> faccessat). We do the same with ordinary
//! rules when the default action is ERRNO or KILL: every native syscall that libseccomp
//! knows, is numbered above the profile's highest, and is not named gets ERRNO(ENOSYS);
//! clone3 gets it too whenever the profile does not name it (as Docker's profile does).
//! Limitation: syscalls newer than libseccomp's own table (2.5.4 on Debian 12 knows up to
//! futex_requeue, 456) cannot be named at all and keep the default action.

mod ffi;
pub mod notify;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::ffi::c_int;
use std::os::fd::{FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};

use crate::logger;

pub use notify::send_notify_fd_over;

/// The largest errno the kernel returns from SECCOMP_RET_ERRNO (it clamps above).
const MAX_ERRNO: u32 = 4095;
/// Syscall arguments are numbered 0..=5.
const MAX_ARG_INDEX: usize = 5;
/// Syscalls the runtime itself makes after the filter is loaded to hand the listener fd
/// to its parent; notifying them would wait for an agent that has not got the fd yet.
const NO_NOTIFY: &[&str] = &["write", "send", "sendto", "sendmsg"];
/// Native syscall numbers scanned for the ENOSYS rules (every arch's table ends below).
const SCAN_LIMIT: c_int = 1024;

/// A built libseccomp filter, ready to load.
#[derive(Debug)]
pub struct Filter {
    ctx: ffi::Ctx,
    notify: bool,
}

/// Checks everything that does not depend on the kernel; each error names the field.
/// (oci-spec has already refused unknown action, operator, arch and flag names.)
pub fn validate(s: &LinuxSeccomp) -> Result<()> {
    let f = "linux.seccomp";
    if s.default_action() == Action::ScmpActNotify {
        bail!("{f}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action");
    }
    action_value(s.default_action(), s.default_errno_ret())
        .with_context(|| format!("{f}.defaultErrnoRet"))?;
    for a in s.architectures().as_deref().unwrap_or_default() {
        arch_token(*a).with_context(|| format!("{f}.architectures"))?;
    }
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
        if sc.action() == Action::ScmpActNotify && !has_listener {
            bail!("{f}.syscalls[{i}].action: SCMP_ACT_NOTIFY requires linux.seccomp.listenerPath");
        }
    }
    Ok(())
}

fn validate_syscall(sc: &LinuxSyscall, f: &str) -> Result<()> {
    if sc.names().is_empty() {
        bail!("{f}.names: must contain at least one syscall name");
    }
    for (j, n) in sc.names().iter().enumerate() {
        if n.is_empty() || n.contains('\0') {
            bail!("{f}.names[{j}]: invalid syscall name {n:?}");
        }
        if sc.action() == Action::ScmpActNotify && NO_NOTIFY.contains(&n.as_str()) {
            bail!("{f}.action: SCMP_ACT_NOTIFY cannot be used for {n} (the runtime needs it to pass the listener fd)");
        }
    }
    action_value(sc.action(), sc.errno_ret()).with_context(|| format!("{f}.errnoRet"))?;
    for (j, a) in sc.args().as_deref().unwrap_or_default().iter().enumerate() {
        if a.index() > MAX_ARG_INDEX {
            bail!(
                "{f}.args[{j}].index: {} is out of range (0 to {MAX_ARG_INDEX})",
                a.index()
            );
        }
    }
    Ok(())
}

/// The libseccomp action value; errors when an errno is given to an action without one.
fn action_value(a: Action, errno_ret: Option<u32>) -> Result<u32> {
    let plain = |v: u32| match errno_ret {
        None => Ok(v),
        Some(_) => bail!("only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not {a}"),
    };
    match a {
        Action::ScmpActErrno => {
            let e = errno_ret.unwrap_or(libc::EPERM as u32);
            if e > MAX_ERRNO {
                bail!("errno {e} is out of range (0 to {MAX_ERRNO})");
            }
            Ok(ffi::act_errno(e))
        }
        Action::ScmpActTrace => {
            let e = errno_ret.unwrap_or(libc::EPERM as u32);
            if e > 0xffff {
                bail!("trace value {e} is out of range (0 to 65535)");
            }
            Ok(ffi::act_trace(e))
        }
        Action::ScmpActKill | Action::ScmpActKillThread => plain(ffi::ACT_KILL_THREAD),
        Action::ScmpActKillProcess => plain(ffi::ACT_KILL_PROCESS),
        Action::ScmpActTrap => plain(ffi::ACT_TRAP),
        Action::ScmpActLog => plain(ffi::ACT_LOG),
        Action::ScmpActAllow => plain(ffi::ACT_ALLOW),
        Action::ScmpActNotify => plain(ffi::ACT_NOTIFY),
    }
}

fn arch_token(a: Arch) -> Result<u32> {
    let name = match a {
        Arch::ScmpArchNative => return Ok(ffi::arch_native()),
        Arch::ScmpArchX86 => "x86",
        Arch::ScmpArchX86_64 => "x86_64",
        Arch::ScmpArchX32 => "x32",
        Arch::ScmpArchArm => "arm",
        Arch::ScmpArchAarch64 => "aarch64",
        Arch::ScmpArchMips => "mips",
        Arch::ScmpArchMips64 => "mips64",
        Arch::ScmpArchMips64n32 => "mips64n32",
        Arch::ScmpArchMipsel => "mipsel",
        Arch::ScmpArchMipsel64 => "mipsel64",
        Arch::ScmpArchMipsel64n32 => "mipsel64n32",
        Arch::ScmpArchPpc => "ppc",
        Arch::ScmpArchPpc64 => "ppc64",
        Arch::ScmpArchPpc64le => "ppc64le",
        Arch::ScmpArchS390 => "s390",
        Arch::ScmpArchS390x => "s390x",
        Arch::ScmpArchRiscv64 => "riscv64",
    };
    ffi::arch_resolve(name).with_context(|| format!("{a}: not supported by this libseccomp"))
}

fn cmp(a: &oci_spec::runtime::LinuxSeccompArg) -> ffi::ScmpArgCmp {
    let op = match a.op() {
        Op::ScmpCmpNe => ffi::CMP_NE,
        Op::ScmpCmpLt => ffi::CMP_LT,
        Op::ScmpCmpLe => ffi::CMP_LE,
        Op::ScmpCmpEq => ffi::CMP_EQ,
        Op::ScmpCmpGe => ffi::CMP_GE,
        Op::ScmpCmpGt => ffi::CMP_GT,
        Op::ScmpCmpMaskedEq => ffi::CMP_MASKED_EQ,
    };
    // For MASKED_EQ, value is the mask and valueTwo the value compared (as in runc).
    ffi::ScmpArgCmp {
        arg: a.index() as u32,
        op,
        datum_a: a.value(),
        datum_b: a.value_two().unwrap_or(0),
    }
}

/// The condition sets to add for one rule: all conditions together (ANDed), or, when an
/// argument index repeats, one set per condition (see the module comment).
fn condition_sets(
    args: &[oci_spec::runtime::LinuxSeccompArg],
) -> (Vec<Vec<ffi::ScmpArgCmp>>, bool) {
    let conds: Vec<_> = args.iter().map(cmp).collect();
    let mut seen = HashSet::new();
    let repeated = conds.iter().any(|c| !seen.insert(c.arg));
    if repeated {
        (conds.into_iter().map(|c| vec![c]).collect(), true)
    } else {
        (vec![conds], false)
    }
}

/// Builds the filter in memory; nothing is loaded into the kernel. `s` has passed
/// `validate` already: spec::load checks it, and exec uses the copy saved at create.
pub fn build(s: &LinuxSeccomp) -> Result<Filter> {
    let default = action_value(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ffi::Ctx::new(default).context("linux.seccomp.defaultAction")?;
    ctx.attr_set(ffi::FLTATR_CTL_NNP, 0)
        .context("seccomp: turn off no_new_privs on load")?;
    // Report the kernel's own errno when loading fails, not a generic ECANCELED.
    ctx.attr_set(ffi::FLTATR_API_SYSRAWRC, 1)
        .context("seccomp: ask for raw return codes")?;
    // A binary tree of syscalls keeps lookups short in large profiles.
    ctx.attr_set(ffi::FLTATR_CTL_OPTIMIZE, 2)
        .context("seccomp: set the optimization level")?;
    for a in s.architectures().as_deref().unwrap_or_default() {
        let token = arch_token(*a).context("linux.seccomp.architectures")?;
        ctx.arch_add(token)
            .with_context(|| format!("linux.seccomp.architectures: add {a}"))?;
    }
    for flag in s.flags().as_deref().unwrap_or_default() {
        let attr = match flag {
            Flag::SeccompFilterFlagTsync => ffi::FLTATR_CTL_TSYNC,
            Flag::SeccompFilterFlagLog => ffi::FLTATR_CTL_LOG,
            Flag::SeccompFilterFlagSpecAllow => ffi::FLTATR_CTL_SSB,
        };
        ctx.attr_set(attr, 1)
            .with_context(|| format!("linux.seccomp.flags: {flag}: not supported"))?;
    }

    let mut notify = false;
    let mut named: HashSet<&str> = HashSet::new();
    for (i, sc) in s
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let f = format!("linux.seccomp.syscalls[{i}]");
        named.extend(sc.names().iter().map(String::as_str));
        let act = action_value(sc.action(), sc.errno_ret()).with_context(|| f.clone())?;
        if act == default {
            continue;
        }
        notify |= sc.action() == Action::ScmpActNotify;
        let (sets, split) = condition_sets(sc.args().as_deref().unwrap_or_default());
        if split {
            logger::warn(&format!(
                "{f}: several conditions on one argument; added as separate rules, so the action applies when any one of them matches"
            ));
        }
        for name in sc.names() {
            let Some(nr) = ffi::syscall_resolve(name) else {
                logger::warn(&format!("{f}: unknown syscall {name:?} skipped"));
                continue;
            };
            for conds in &sets {
                ctx.rule_add(act, nr, conds)
                    .with_context(|| format!("{f}: add rule for {name}"))?;
            }
        }
    }

    let enosys = ffi::act_errno(libc::ENOSYS as u32);
    if default != enosys && wants_enosys(s.default_action()) {
        for (name, nr) in enosys_syscalls(&named) {
            ctx.rule_add(enosys, nr, &[])
                .with_context(|| format!("seccomp: add ENOSYS rule for {name}"))?;
        }
    }
    Ok(Filter { ctx, notify })
}

/// Default actions for which an unknown (newer) syscall should rather see ENOSYS.
fn wants_enosys(a: Action) -> bool {
    matches!(
        a,
        Action::ScmpActErrno
            | Action::ScmpActKill
            | Action::ScmpActKillThread
            | Action::ScmpActKillProcess
    )
}

/// Native syscalls newer than every syscall the profile names (plus clone3), that the
/// profile does not name: they get ERRNO(ENOSYS). Empty when the profile names nothing.
fn enosys_syscalls(named: &HashSet<&str>) -> Vec<(String, c_int)> {
    let native = ffi::arch_native();
    let highest = named
        .iter()
        .filter_map(|n| ffi::syscall_resolve(n))
        .filter(|nr| *nr >= 0)
        .max();
    let mut out = Vec::new();
    if let Some(highest) = highest {
        for nr in highest + 1..SCAN_LIMIT {
            if let Some(name) = ffi::syscall_name(native, nr) {
                if !named.contains(name.as_str()) {
                    out.push((name, nr));
                }
            }
        }
    }
    if !named.contains("clone3") && !out.iter().any(|(n, _)| n == "clone3") {
        if let Some(nr) = ffi::syscall_resolve("clone3") {
            out.push(("clone3".to_string(), nr));
        }
    }
    out
}

/// Loads the filter into the calling thread (and, with TSYNC, its siblings). Returns the
/// listener fd when a rule uses SCMP_ACT_NOTIFY. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn load(f: Filter) -> Result<Option<OwnedFd>> {
    let mut f = f;
    f.ctx.load().context("seccomp: load the filter")?;
    if !f.notify {
        return Ok(None);
    }
    let fd = f
        .ctx
        .notify_fd()
        .context("seccomp: get the notify listener fd")?;
    // SAFETY: the kernel made this fd (O_CLOEXEC) for this load; libseccomp only keeps
    // its number and never closes or uses it again, so we take ownership.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}
