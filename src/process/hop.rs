//! The second fork the kernel demands when a process enters a user namespace that
//! already exists (one joined by `linux.namespaces[].path`, or a running container's
//! for exec) and pid or time namespaces with it. Those two apply to children only,
//! and joining or creating them inside that user namespace needs capabilities there,
//! which only a process already in it has; setns into a user namespace is for good,
//! so paddock itself cannot do it. Hence: the child clone()d by paddock ("A") joins
//! the user namespace, then the pid/time namespaces, creates the new ones, and forks
//! "B" as a sibling (CLONE_PARENT: paddock stays its parent and reaps it). A reports
//! B's pid (its own pid namespace is paddock's, so the number is the same for both)
//! and exits; B goes on with the usual setup. runc's nsexec does the same in its
//! stage-1 child.

use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};

use super::channel::{Channel, Message};
use crate::linux::namespaces;
use crate::spec::Bundle;

/// What A enters before it forks.
pub struct Hop<'a> {
    pub user: OwnedFd,
    /// pid and time namespaces to join (they apply to B).
    pub for_children: Vec<(OwnedFd, libc::c_int)>,
    /// CLONE_NEW* flags of the namespaces to create inside the user namespace.
    pub unshare: libc::c_int,
    /// A new time namespace, with the bundle's offsets.
    pub new_time: Option<&'a Bundle>,
}

/// In A: enters the namespaces, forks B, reports B's pid and exits. Returns in B only.
pub fn enter_and_fork(hop: Hop<'_>, chan: &Channel) -> Result<()> {
    // As runc: pid/time namespaces that belong to an outer user namespace can only be
    // joined before we enter the container's; the others only after.
    let mut pending = Vec::new();
    for (fd, flag) in hop.for_children {
        if namespaces::setns(&fd, flag, "joined namespace").is_err() {
            pending.push((fd, flag));
        }
    }
    namespaces::setns(&hop.user, libc::CLONE_NEWUSER, "user namespace")?;
    // As runc: root in the namespace joined, as after creating one (files made
    // before the process's own user applies must have mapped owners).
    // SAFETY: plain id changes.
    if unsafe { libc::setresgid(0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setresgid 0 in user namespace");
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setresuid 0 in user namespace");
    }
    for (fd, flag) in &pending {
        namespaces::setns(fd, *flag, "joined namespace")?;
    }
    if hop.unshare != 0 {
        // SAFETY: unshare with CLONE_NEW* flags only.
        if unsafe { libc::unshare(hop.unshare) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("unshare namespaces inside the joined user namespace");
        }
    }
    if let Some(bundle) = hop.new_time {
        super::unshare_time_with_offsets(bundle)?;
    }
    // SAFETY: fork-style clone of a single-threaded process; B only returns from here.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        return Ok(());
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork into the joined namespaces");
    }
    // B is running: from here A only reports and leaves (a failed send shows up in the
    // parent as A exiting without a word).
    let _ = chan.send(&Message::Forked { pid: pid as i32 });
    // SAFETY: _exit has no preconditions; A must not run the parent's destructors.
    unsafe { libc::_exit(0) }
}

/// In paddock: B's pid once A has forked it; A is reaped.
pub fn await_fork(chan: &Channel, a: i32) -> Result<i32> {
    let got = chan.recv();
    super::wait_exit_code(a).context("wait for the forking child")?;
    match got? {
        Some(Message::Forked { pid }) => Ok(pid),
        Some(Message::Error { message }) => bail!("{message}"),
        Some(other) => bail!("protocol error: expected Forked, got {other:?}"),
        None => bail!("container process exited while entering its namespaces"),
    }
}
