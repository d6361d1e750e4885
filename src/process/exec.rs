//! Child side of exec: a new process that enters a running container. The order
//! mirrors init's last steps; each constraint says why.

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Process;

use super::channel::{Channel, Message};
use super::env;
use super::init::{
    apply_lsm_labels, confine, exec, fail, find_executable, has_cpuset, load_seccomp, prctl,
    prepare_seccomp, reset_signals,
};
use crate::linux::cgroups::entry::Entry;
use crate::linux::{namespaces, procattrs, rlimits, tty};

pub struct ExecArgs<'a> {
    /// Enter the container's user namespace and fork once more first (hop.rs).
    pub hop: Option<super::hop::Hop<'a>>,
    pub process: &'a Process,
    pub attrs: &'a crate::spec::attrs::ProcessAttrs,
    pub linux_attrs: &'a crate::spec::attrs::LinuxAttrs,
    /// The container's linux section as saved at create (for its seccomp profile).
    pub linux: Option<&'a oci_spec::runtime::Linux>,
    pub chan: Channel,
    /// Already in its v2 part (clone3); the v1 hierarchies we join ourselves.
    pub cgroup: Entry,
    /// Namespaces of the container to enter, user first and mount last.
    pub joins: Vec<(OwnedFd, libc::c_int)>,
    /// The container's root when it shares our mount namespace: chroot there.
    pub root: Option<OwnedFd>,
    pub console: Option<OwnedFd>,
    /// The console goes to our own foreground proxy (no --console-socket).
    pub proxied_console: bool,
    pub preserve_fds: u32,
    pub tail: Option<OwnedFd>,
}

pub fn run(mut args: ExecArgs<'_>) -> ! {
    let Err(err) = setup(&mut args);
    fail(&args.chan, "exec", &err)
}

fn setup(a: &mut ExecArgs<'_>) -> Result<Infallible> {
    let affinity = a.attrs.exec_cpu_affinity.as_ref();
    // As runc: the process starts on its initial CPUs, before it is in the cgroup.
    procattrs::set_initial_affinity(affinity)?;
    // Before it runs anything: every process of the container is in its cgroup.
    a.cgroup.enter()?;
    // Non-dumpable until execve: the container must not ptrace us while we hold host fds.
    prctl(libc::PR_SET_DUMPABLE, 0, "set exec process non-dumpable")?;
    if let Some(hop) = a.hop.take() {
        // After the cgroup: the second child is born in it.
        super::hop::enter_and_fork(hop, &a.chan)?;
    }
    // Without clone3 the parent has joined us to v2 by now.
    let state = match a.chan.recv()? {
        Some(Message::Continue { state }) => state,
        other => bail!("protocol error: expected Continue, got {other:?}"),
    };
    // In every cgroup now (the parent has joined us to v2 where clone3 could not).
    procattrs::set_final_affinity(affinity)?;
    // Both need host paths: the notify agent's socket and the host's /proc.
    let seccomp = match a.linux {
        Some(linux) => prepare_seccomp(linux)?,
        None => None,
    };
    apply_lsm_labels(a.process)?;
    for (fd, flag) in &a.joins {
        namespaces::setns(fd, *flag, "container namespace")?;
    }
    if let Some(root) = a.root.take() {
        crate::linux::rootfs::chroot_into(root.as_fd())?;
    }
    let process = a.process;
    let pty_slave = if process.terminal().unwrap_or(false) {
        Some(open_console(a, process)?)
    } else {
        None
    };
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    if let Some(slave) = &pty_slave {
        // SAFETY: setsid has no preconditions; a terminal needs its own session.
        unsafe { libc::setsid() };
        tty::make_controlling_stdio(slave.as_fd())?;
    }
    drop(pty_slave);
    if let Some(mask) = process.user().umask() {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    // Inside the container, before the user changes: HOME comes from its passwd.
    let env = env::prepare(
        process.env().as_deref().unwrap_or_default(),
        process.user().uid(),
    )?;
    let exe = find_executable(process, &env)?;
    // Real-time policies and the RT I/O class need the privileges confine drops.
    procattrs::apply(
        a.attrs,
        a.linux_attrs.personality.as_ref(),
        a.linux_attrs.memory_policy.as_ref(),
        a.linux.is_some_and(has_cpuset),
    )?;
    let seccomp = confine(process, seccomp, &state, a.preserve_fds)?;
    load_seccomp(seccomp, &state)?;
    reset_signals();
    if let Some(tail) = &a.tail {
        // No filter here (tail.rs); the channel stays open until the tail execs.
        return super::tail::exec(tail, &a.chan, None, &exe, process, &env);
    }
    // No Ready message: the channel is close-on-exec, so the parent sees EOF
    // exactly when execve succeeded, and our Error message when it did not.
    exec(&exe, process, &env)
}

/// A pty from the container's own devpts, sent to the console socket.
fn open_console(a: &ExecArgs<'_>, process: &Process) -> Result<OwnedFd> {
    let socket = a
        .console
        .as_ref()
        .context("--tty: no console socket to send the terminal to")?;
    let root: OwnedFd = File::open("/").context("open container root")?.into();
    let (master, slave) = tty::open_pty(root.as_fd())?;
    tty::set_size(master.as_fd(), process.console_size().as_ref())?;
    if a.proxied_console {
        // Before the program can write: the proxy gets the master only after we run.
        tty::clear_onlcr(master.as_fd())?;
    }
    tty::send_to_console_socket(socket.as_fd(), master.as_fd())?;
    Ok(slave)
}
