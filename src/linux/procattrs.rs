//! A process's scheduling, I/O priority, CPU affinity, personality and NUMA memory
//! policy, set on the calling process (init or an exec'd process) as runc 1.5 does.
//! The values were checked by spec::attrs; a conversion that fails here still
//! returns an error instead of panicking (this runs in the child).

use anyhow::{Context, Result};

use crate::spec::attrs::{
    self, CpuAffinity, IoPriority, MemoryPolicy, Personality, ProcessAttrs, Scheduler,
};

/// struct sched_attr of sched_setattr(2) (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// sched_setattr on this process. `has_cpuset`: the container limits its CPUs, where
/// the kernel refuses real-time policies with EPERM (runc's message for that).
pub fn set_scheduler(s: &Scheduler, has_cpuset: bool) -> Result<()> {
    let mut flags = 0;
    for f in &s.flags {
        flags |= attrs::sched_flag(f)?;
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: attrs::sched_policy(&s.policy)?,
        flags,
        nice: s.nice,
        priority: s.priority as u32,
        runtime: s.runtime,
        deadline: s.deadline,
        period: s.period,
    };
    // SAFETY: sched_setattr reads a sched_attr of the stated size.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EPERM) && has_cpuset {
            anyhow::bail!("process scheduler can't be used together with AllowedCPUs");
        }
        return Err(err).context("error setting scheduler");
    }
    Ok(())
}

/// ioprio_set for this process: class in the top bits, level below (linux/ioprio.h).
pub fn set_io_priority(io: &IoPriority) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i32 = 13;
    let value = (attrs::io_priority_class(&io.class)? << IOPRIO_CLASS_SHIFT) | io.priority;
    // SAFETY: ioprio_set with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("failed to set io priority");
    }
    Ok(())
}

pub fn set_personality(p: &Personality) -> Result<()> {
    let domain = attrs::personality_domain(&p.domain)?;
    // SAFETY: personality with a plain integer; only 0xffffffff queries.
    if unsafe { libc::personality(domain) } < 0 {
        return Err(std::io::Error::last_os_error()).context("set_personality");
    }
    Ok(())
}

pub fn set_memory_policy(m: &MemoryPolicy) -> Result<()> {
    let plan = attrs::memory_policy(m)?;
    let (mask, maxnode) = match &plan.nodes {
        // The kernel reads one bit less than maxnode says (mm/mempolicy.c get_nodes).
        Some(words) => (words.as_ptr(), words.len() as libc::c_ulong * 64 + 1),
        None => (std::ptr::null(), 0),
    };
    loop {
        // SAFETY: the mask holds the (maxnode - 1) bits the kernel reads.
        let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, plan.mode, mask, maxnode) };
        if r == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err).context("set_mempolicy");
        }
    }
}

/// Scheduling, I/O priority, personality and memory policy of the process about to
/// exec, in runc's order (all before the user and capabilities change).
pub fn apply(
    process: &ProcessAttrs,
    personality: Option<&Personality>,
    memory: Option<&MemoryPolicy>,
    has_cpuset: bool,
) -> Result<()> {
    if let Some(s) = &process.scheduler {
        set_scheduler(s, has_cpuset)?;
    }
    if let Some(io) = &process.io_priority {
        set_io_priority(io)?;
    }
    if let Some(p) = personality {
        set_personality(p)?;
    }
    if let Some(m) = memory {
        set_memory_policy(m)?;
    }
    Ok(())
}

fn set_affinity(words: &[u64]) -> std::io::Result<()> {
    // SAFETY: the mask is words.len() * 8 bytes long.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            words.len() * 8,
            words.as_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// An exec'd process's affinity as it starts, before it joins the container's cgroup.
pub fn set_initial_affinity(a: Option<&CpuAffinity>) -> Result<()> {
    let Some(a) = a else {
        return Ok(());
    };
    if let Some(words) = attrs::cpu_set(&a.initial)? {
        set_affinity(&words).context("error setting initial CPU affinity")?;
    }
    Ok(())
}

/// The affinity once in the container's cgroup: the configured final one; without
/// any configured, every CPU (as runc: nothing inherits the runtime's own pinning,
/// and the kernel narrows it to the cgroup's cpuset).
pub fn set_final_affinity(a: Option<&CpuAffinity>) -> Result<()> {
    match a {
        Some(a) if !a.initial.is_empty() || !a.last.is_empty() => {
            if let Some(words) = attrs::cpu_set(&a.last)? {
                set_affinity(&words).context("error setting final CPU affinity")?;
            }
        }
        _ => {
            let all = vec![u64::MAX; (attrs::MAX_CPU / 64) as usize];
            if let Err(e) = set_affinity(&all) {
                crate::logger::warn(&format!(
                    "resetting the CPU affinity failed ({e}): the container process may inherit paddock's CPU affinity"
                ));
            }
        }
    }
    Ok(())
}
