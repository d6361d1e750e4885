//! Child side of create: the container's init, from clone() to execve. One call
//! per step; the order is the point of this file, and each constraint says why.
//! Nothing here may panic: every error goes back to the parent as a message.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Linux, Process, Spec};

use super::channel::{Channel, Message};
use super::env;
use crate::linux::cgroups::entry::Entry;
use crate::linux::{
    caps, devices, hooks, lsm, mounts, namespaces, procattrs, rlimits, rootfs, seccomp, sysctl, tty,
};
use crate::spec::{find_program, Bundle, Probe};

pub struct InitArgs<'a> {
    /// Enter a joined user namespace and fork once more first (hop.rs).
    pub hop: Option<super::hop::Hop<'a>>,
    /// Mount trees the parent opened, by mount index (idmap.rs).
    pub trees: Vec<Option<crate::linux::idmap::Tree>>,
    pub bundle: &'a Bundle,
    pub id: &'a str,
    pub chan: Channel,
    /// Already in its v2 part (clone3); the v1 hierarchies we join ourselves.
    pub cgroup: Entry,
    pub fifo: OwnedFd,
    pub console: Option<OwnedFd>,
    /// Namespaces to join by path, user first and mount last (pid/time: done by the parent).
    pub joins: Vec<(OwnedFd, libc::c_int)>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub close_fds: Vec<RawFd>,
    pub tail: Option<OwnedFd>,
}

pub fn run(mut args: InitArgs<'_>) -> ! {
    let Err(err) = setup(&mut args);
    fail(&args.chan, "init", &err)
}

/// Reports a child's failure to the parent and exits. When the parent no longer
/// listens (init after Ready), stderr is the only place left to say it.
pub(super) fn fail(chan: &Channel, who: &str, err: &anyhow::Error) -> ! {
    let message = format!("{err:#}");
    if chan
        .send(&Message::Error {
            message: message.clone(),
        })
        .is_err()
    {
        crate::logger::write_stderr(&format!("paddock {who}: {message}\n"));
    }
    // 255 as runc 1.5's init: after start (a startContainer hook, a failed execve)
    // this is the container's exit code. _exit skips the parent's destructors.
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(255) }
}

fn setup(a: &mut InitArgs<'_>) -> Result<Infallible> {
    // First, so that everything init does and allocates belongs to the container.
    a.cgroup.enter()?;
    if let Some(hop) = a.hop.take() {
        // After the cgroup: the second child is born in it.
        super::hop::enter_and_fork(hop, &a.chan)?;
    }
    // Non-dumpable until execve: container processes cannot ptrace init or open
    // its /proc files while it still holds host fds (CVE-2016-9962). In a new user
    // namespace only once the maps are written: a parent without privileges can
    // write them only while init's /proc files are its own (as runc).
    if !a.bundle.ns.new_user() {
        prctl(libc::PR_SET_DUMPABLE, 0, "set init non-dumpable")?;
    }
    for fd in &a.close_fds {
        // SAFETY: closing our inherited copy; the state-dir lock must not outlive create.
        unsafe { libc::close(*fd) };
    }
    let spec = &a.bundle.spec;
    let process = spec.process().as_ref().context("process: missing")?;
    let linux = spec.linux().as_ref().context("linux: missing")?;
    let plan = &a.bundle.ns;

    // The parent has written the id maps (and, without clone3, joined us to v2) by now.
    let state = match a.chan.recv()? {
        Some(Message::Continue { state }) => state,
        other => bail!("protocol error: expected Continue, got {other:?}"),
    };
    // In every cgroup now: as runc, init does not keep paddock's own CPU pinning.
    procattrs::set_final_affinity(None)?;
    if plan.new_user() {
        prctl(libc::PR_SET_DUMPABLE, 0, "set init non-dumpable")?;
        become_namespace_root(spec)?;
    }
    for (fd, flag) in &a.joins {
        namespaces::setns(fd, *flag, "joined namespace")?;
    }
    if plan.new_cgroup {
        // Unshared only now, inside the container's cgroup, so that cgroup is its root.
        unshare(libc::CLONE_NEWCGROUP, "cgroup namespace")?;
    }
    set_uts_names(spec)?;
    if plan.clone_flags & libc::CLONE_NEWNET != 0 {
        crate::linux::netdev::loopback_up()?;
    }
    if !a.no_new_keyring {
        join_session_keyring(a.id);
    }
    if let Some(adj) = process.oom_score_adj() {
        // Through the host /proc, before privileges drop (lowering needs CAP_SYS_RESOURCE).
        fs::write("/proc/self/oom_score_adj", adj.to_string())
            .context("process.oomScoreAdj: write /proc/self/oom_score_adj")?;
    }

    // Built (and its notify agent connected) while host paths are still reachable.
    let seccomp = prepare_seccomp(linux)?;
    let in_userns = plan.has(libc::CLONE_NEWUSER);
    // Without a mount namespace, / is the host's: its propagation is not ours to change.
    let own_mount_ns = plan.has(libc::CLONE_NEWNS);
    if own_mount_ns {
        rootfs::set_root_propagation(linux.rootfs_propagation().as_deref())?;
    }
    let root = rootfs::bind_rootfs(&a.bundle.rootfs)?;
    if !own_mount_ns {
        rootfs::make_rootfs_private(root.as_fd())?;
    }
    mounts::mount_all(
        root.as_fd(),
        spec.mounts().as_deref().unwrap_or_default(),
        &a.bundle.dir,
        in_userns,
        &mut a.trees,
    )?;
    // A bind-mounted /dev is the caller's own: nothing is created in it (as runc).
    if !mounts::binds_dev(spec.mounts().as_deref().unwrap_or_default()) {
        devices::create_default_devices(
            root.as_fd(),
            in_userns,
            linux.devices().as_deref().unwrap_or_default(),
        )?;
    }
    let pty_slave = if process.terminal().unwrap_or(false) {
        Some(setup_console(a, process, root.as_fd())?)
    } else {
        None
    };

    // prestart and createRuntime run in the runtime's namespaces, after the mounts
    // and before pivot_root; the parent runs them when asked.
    a.chan.send(&Message::RunHooks)?;
    a.chan.expect(Message::HooksDone)?;
    if let Some(h) = spec.hooks() {
        // As runc: createContainer hooks run with the container's root as their cwd.
        nix::unistd::fchdir(root.as_raw_fd()).context("chdir to the container's root")?;
        hooks::run_hooks(
            "createContainer",
            h.create_container().as_deref().unwrap_or_default(),
            &with_status(&state, "creating"),
        )?;
    }

    // Through the host /proc, before pivot_root: the container cannot redirect it
    // (CVE-2019-16884). It takes effect at execve.
    apply_lsm_labels(process)?;
    if let Some(s) = linux.sysctl() {
        // Through the host /proc, which the container cannot have tampered with.
        sysctl::apply(s)?;
    }
    mounts::finish_readonly(root.as_fd(), spec.mounts().as_deref().unwrap_or_default())?;
    rootfs::mask_paths(
        root.as_fd(),
        linux.masked_paths().as_deref().unwrap_or_default(),
    )?;
    rootfs::readonly_paths(
        root.as_fd(),
        linux.readonly_paths().as_deref().unwrap_or_default(),
    )?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        rootfs::make_root_readonly(root.as_fd())?;
    }
    if !own_mount_ns {
        rootfs::chroot_into(root.as_fd())?;
    } else if a.no_pivot {
        rootfs::move_root_no_pivot(root.as_fd())?;
    } else {
        rootfs::pivot_root(root.as_fd())?;
    }
    drop(root);
    rootfs::apply_propagation_after_pivot(linux.rootfs_propagation().as_deref())?;
    if own_mount_ns && !mounts::binds_dev(spec.mounts().as_deref().unwrap_or_default()) {
        devices::reopen_dev_null()?;
    }

    // Raising hard limits needs CAP_SYS_RESOURCE, so before the user changes.
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    // SAFETY: setsid has no preconditions; init leads a new session.
    unsafe { libc::setsid() };
    if let Some(slave) = &pty_slave {
        tty::make_controlling_stdio(slave.as_fd())?;
    }
    drop(pty_slave);
    if let Some(mask) = process.user().umask() {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    // Inside the root, before the user changes: HOME comes from the container's passwd.
    let env = env::prepare(
        process.env().as_deref().unwrap_or_default(),
        process.user().uid(),
    )?;
    // Resolved now so that a missing program fails `create`, not `start`.
    let exe = find_executable(process, &env)?;
    // Real-time policies and the RT I/O class need the privileges confine drops.
    let attrs = &a.bundle.attrs;
    procattrs::apply(
        &attrs.process,
        attrs.linux.personality.as_ref(),
        attrs.linux.memory_policy.as_ref(),
        has_cpuset(linux),
    )?;
    let seccomp = confine(process, seccomp, &state, a.preserve_fds)?;
    if let Some(tail) = &a.tail {
        // No filter and no startContainer hooks here (tail.rs): the tail reports Ready,
        // waits for start and execs, as below.
        reset_signals();
        return super::tail::exec(tail, &a.chan, Some(&a.fifo), &exe, process, &env);
    }

    a.chan.send(&Message::Ready)?;
    wait_for_start(&a.fifo)?;
    // As runc: after the start handshake (the filter may allow neither the Ready message
    // nor the fifo read) and before the startContainer hooks.
    load_seccomp(seccomp, &state)?;
    if let Some(h) = spec.hooks() {
        // As runc: a startContainer hook without env of its own gets the process's.
        let start_hooks = with_default_env(h.start_container().as_deref(), &env);
        hooks::run_hooks(
            "startContainer",
            &start_hooks,
            &with_status(&state, "created"),
        )?;
    }
    // Only now: writing hook stdin relies on SIGPIPE being ignored.
    reset_signals();
    exec(&exe, process, &env)
}

/// Whether the container limits its CPUs (where the kernel refuses real-time policies).
pub(super) fn has_cpuset(linux: &Linux) -> bool {
    linux
        .resources()
        .as_ref()
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| c.cpus().as_deref())
        .is_some_and(|c| !c.is_empty())
}

fn with_default_env(
    hooks: Option<&[oci_spec::runtime::Hook]>,
    env: &[String],
) -> Vec<oci_spec::runtime::Hook> {
    let mut hooks = hooks.unwrap_or_default().to_vec();
    for h in &mut hooks {
        if h.env().as_ref().is_none_or(|e| e.is_empty()) {
            h.set_env(Some(env.to_vec()));
        }
    }
    hooks
}

/// cwd, fds, user, capabilities and no_new_privs, with the seccomp filter at the
/// point the spec asks for. Returns the filter when it must wait for the very end
/// (with no_new_privs it confines only the program, so it goes on right before execve).
pub(super) fn confine(
    process: &Process,
    seccomp: Option<Seccomp>,
    state: &str,
    preserve_fds: u32,
) -> Result<Option<Seccomp>> {
    chdir_inside(process.cwd())?;
    // Before any filter: the profile may not allow close_range.
    keep_only_container_fds(preserve_fds)?;
    // While still root: the process's own user must be able to use its terminal.
    // Only a terminal we made: inherited stdio may be the caller's host tty.
    if process.terminal().unwrap_or(false) {
        tty::give_stdio_pty_to(process.user().uid())?;
    }
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let pending = if no_new_privs {
        seccomp
    } else {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the caps drop.
        load_seccomp(seccomp, state)?;
        None
    };
    set_user(process)?;
    caps::apply(process.capabilities().as_ref())?;
    if no_new_privs {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "set no_new_privs")?;
    }
    Ok(pending)
}

/// A seccomp filter built ahead of time, and the connection to its notify agent.
pub(super) struct Seccomp {
    filter: seccomp::Filter,
    agent: Option<(UnixStream, String)>,
}

pub(super) fn prepare_seccomp(linux: &Linux) -> Result<Option<Seccomp>> {
    let Some(s) = linux.seccomp() else {
        return Ok(None);
    };
    let filter = seccomp::build(s)?;
    let agent = match s.listener_path() {
        Some(p) => Some((
            UnixStream::connect(p)
                .with_context(|| format!("linux.seccomp.listenerPath: connect {}", p.display()))?,
            s.listener_metadata().clone().unwrap_or_default(),
        )),
        None => None,
    };
    Ok(Some(Seccomp { filter, agent }))
}

/// Loads the filter; a notify listener fd goes to the agent with `state` and is closed.
pub(super) fn load_seccomp(s: Option<Seccomp>, state: &str) -> Result<()> {
    let Some(s) = s else {
        return Ok(());
    };
    let listener = seccomp::load(s.filter)?;
    if let (Some(fd), Some((agent, metadata))) = (listener, &s.agent) {
        seccomp::send_notify_fd_over(agent, metadata, state, fd.as_fd())?;
    }
    Ok(())
}

/// AppArmor profile / SELinux label for the next execve (the loader has already
/// refused them when the host has no such LSM).
pub(super) fn apply_lsm_labels(process: &Process) -> Result<()> {
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        lsm::apply_apparmor_on_exec(p)?;
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        lsm::apply_selinux_on_exec(l)?;
    }
    Ok(())
}

fn with_status(state: &str, status: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(state) {
        Ok(mut v) => {
            v["status"] = status.into();
            v.to_string()
        }
        Err(_) => state.to_string(),
    }
}

fn unshare(flag: libc::c_int, what: &str) -> Result<()> {
    // SAFETY: unshare with a valid flag.
    if unsafe { libc::unshare(flag) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("unshare {what}"));
    }
    Ok(())
}

pub(super) fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

/// In a new user namespace, become its uid/gid 0 when mapped, so the namespaces
/// created with it are ours to set up.
fn become_namespace_root(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if namespaces::maps_contain(linux.gid_mappings().as_deref().unwrap_or_default(), 0) {
        // SAFETY: plain id change.
        if unsafe { libc::setresgid(0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setresgid 0 in user namespace");
        }
    }
    if namespaces::maps_contain(linux.uid_mappings().as_deref().unwrap_or_default(), 0) {
        // SAFETY: plain id change.
        if unsafe { libc::setresuid(0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setresuid 0 in user namespace");
        }
    }
    Ok(())
}

fn set_uts_names(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).with_context(|| format!("hostname: set {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: pointer and length of a live buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("domainname: set {d:?}"));
        }
    }
    Ok(())
}

/// A fresh session keyring named after the container, so containers do not share
/// the caller's keys. Kernels without keyrings (or seccomp'd hosts) just go without.
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let Ok(name) = CString::new(format!("_ses.{id}")) else {
        return;
    };
    // SAFETY: keyctl with a NUL-terminated name.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        crate::logger::debug("could not join a new session keyring");
    }
}

fn setup_console(
    a: &InitArgs<'_>,
    process: &Process,
    root: std::os::fd::BorrowedFd<'_>,
) -> Result<OwnedFd> {
    let socket = a
        .console
        .as_ref()
        .context("process.terminal: true, but no --console-socket was given")?;
    let (master, slave) = tty::open_pty(root)?;
    tty::set_size(master.as_fd(), process.console_size().as_ref())?;
    tty::send_to_console_socket(socket.as_fd(), master.as_fd())?;
    devices::bind_console(root, slave.as_fd())?;
    Ok(slave)
}

/// args[0] as execve will find it: a path, or a search of PATH from the prepared `env`.
pub(super) fn find_executable(process: &Process, env: &[String]) -> Result<PathBuf> {
    let args = process.args().as_deref().unwrap_or_default();
    let prog = args.first().context("process.args: empty")?;
    find_program(prog, process.cwd(), env, |c| match fs::metadata(c) {
        Ok(m) => Probe::of(&m),
        Err(_) => Probe::Missing,
    })
}

/// chdir, then check the kernel agrees we are where we asked to be: a cwd like
/// /proc/self/fd/N must never leave us outside the container (CVE-2024-21626).
fn chdir_inside(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).with_context(|| format!("process.cwd: chdir {}", cwd.display()))?;
    let actual = nix::unistd::getcwd()
        .with_context(|| format!("process.cwd: {} is outside the container", cwd.display()))?;
    if !actual.is_absolute() {
        bail!("process.cwd: {} is outside the container", cwd.display());
    }
    Ok(())
}

/// Exactly the configured groups, then gid, then uid; capabilities survive the
/// uid change only through KEEPCAPS, and are then set exactly by caps::apply.
fn set_user(process: &Process) -> Result<()> {
    let user = process.user();
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // SAFETY: pointer and length of a live vector.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
        let err = std::io::Error::last_os_error();
        // In a user namespace whose setgroups is denied, an empty list is the only option.
        if !(groups.is_empty() && err.raw_os_error() == Some(libc::EPERM)) {
            return Err(err).context("process.user.additionalGids: setgroups");
        }
    }
    caps::prepare_for_setuid()?;
    // SAFETY: plain id changes.
    if unsafe { libc::setresgid(user.gid(), user.gid(), user.gid()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("process.user.gid: setresgid {}", user.gid()));
    }
    // SAFETY: plain id changes.
    if unsafe { libc::setresuid(user.uid(), user.uid(), user.uid()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("process.user.uid: setresuid {}", user.uid()));
    }
    Ok(())
}

/// Every fd from 3+N up becomes close-on-exec; 3..3+N are handed to the program.
fn keep_only_container_fds(preserve: u32) -> Result<()> {
    let first = 3 + preserve;
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags here.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("close_range");
    }
    for fd in 3..first as RawFd {
        // SAFETY: clearing FD_CLOEXEC on an fd the caller asked us to pass on.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("--preserve-fds: fd {fd}"));
        }
    }
    Ok(())
}

/// Rust ignores SIGPIPE, and an ignored signal stays ignored across execve.
pub(super) fn reset_signals() {
    // SAFETY: restoring default dispositions and an empty mask.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Blocks until `paddock start` writes a byte into the exec fifo.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: read into a one-byte buffer.
        let n = unsafe { libc::read(fifo.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if n < 0 && err.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        bail!("wait for start on the exec fifo: {err}");
    }
}

pub(super) fn exec(exe: &Path, process: &Process, env: &[String]) -> Result<Infallible> {
    let to_c = |s: &str| CString::new(s).with_context(|| format!("process: NUL byte in {s:?}"));
    let path = CString::new(exe.as_os_str().as_bytes()).context("process.args[0]: NUL byte")?;
    let args = process
        .args()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| to_c(s))
        .collect::<Result<Vec<_>>>()?;
    let env = env.iter().map(|s| to_c(s)).collect::<Result<Vec<_>>>()?;
    match nix::unistd::execve(&path, &args, &env) {
        Ok(never) => match never {},
        Err(err) => Err(err).with_context(|| format!("exec {}", exe.display())),
    }
}
