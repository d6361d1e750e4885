//! Serve mode (no action, `-socket ADDR`). The crate's own serve loop registers the task
//! service only as `containerd.task.v3.Task` (containerd 2.x); containerd 1.6 calls
//! `containerd.task.v2.Task`, whose messages are the same. So the server is set up here and the
//! service answers under both names. Exits are still reaped once, here, and handed to the
//! crate's exit monitor, which the task service and the CLI runner subscribe to.

use std::collections::HashMap;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use containerd_shim::monitor::monitor_notify_by_pid;
use containerd_shim::protos::shim::shim_ttrpc::create_task;
use containerd_shim::protos::ttrpc::Server;
use containerd_shim::{Config, Flags, Shim};

use crate::service::Service;

const TASK_V3: &str = "/containerd.task.v3.Task/";
const TASK_V2: &str = "/containerd.task.v2.Task/";

pub fn serve(runtime_id: &str, flags: &Flags) -> Result<()> {
    anyhow::ensure!(
        !flags.namespace.is_empty(),
        "shim namespace cannot be empty"
    );
    // Blocked before any thread exists, so only the reaper thread takes them (sigwaitinfo).
    let signals = block_signals()?;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("become a subreaper");
    }
    containerd_shim::logger::init(flags.debug, "info", &flags.namespace, &flags.id)
        .map_err(|e| anyhow!("shim log: {e}"))?;
    let path = flags
        .socket
        .strip_prefix("unix://")
        .unwrap_or(&flags.socket)
        .to_string();
    let Some(listener) = bind(&path)? else {
        // Another shim of the same group answers already.
        server_started();
        return Ok(());
    };
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").context("TTRPC_ADDRESS is not set")?;
    let mut shim = Service::new(runtime_id, flags, &mut Config::default());
    let task = Arc::new(shim.task_service(ttrpc_address));
    let mut methods = HashMap::new();
    for (name, handler) in create_task(task.clone()) {
        methods.insert(name.replacen(TASK_V3, TASK_V2, 1), handler);
    }
    methods.extend(create_task(task));
    // Fewer idle handler threads per connection than ttrpc's default (containerd holds one
    // connection); with none idle the server starts another, so RPCs never queue behind a
    // blocking Wait. ttrpc requires min < default < max.
    let mut server = Server::new()
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(3)
        .add_listener(listener.into_raw_fd())
        .map_err(|e| anyhow!("ttrpc server: {e}"))?
        .register_service(methods);
    server.start().map_err(|e| anyhow!("ttrpc server: {e}"))?;
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(128 * 1024)
        .spawn(move || reap(signals))
        .context("start the reaper")?;
    server_started();
    shim.wait();
    server.shutdown();
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Bind the socket; None when a live shim already serves it (a stale file is replaced).
fn bind(path: &str) -> Result<Option<UnixListener>> {
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).context("create the socket directory")?;
    }
    match UnixListener::bind(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path).context("remove a stale socket")?;
            Ok(Some(
                UnixListener::bind(path).context("bind the shim socket")?,
            ))
        }
        Err(e) => Err(e).context("bind the shim socket"),
    }
}

/// The `start` process copies our stdout until we let go of it: then the socket is listening.
fn server_started() {
    // SAFETY: dup2 of our own standard descriptors.
    unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
}

fn block_signals() -> Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
    }
    // SAFETY: set is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    anyhow::ensure!(
        rc == 0,
        "block signals: {}",
        std::io::Error::from_raw_os_error(rc)
    );
    Ok(set)
}

/// The one reaper: every SIGCHLD empties the queue of exited children into the monitor.
/// SIGTERM/SIGINT are taken and ignored, as the crate does: containerd ends a shim by Shutdown.
fn reap(set: libc::sigset_t) {
    loop {
        // SAFETY: set is a valid, initialised signal set; a null siginfo pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig != libc::SIGCHLD {
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a pointer to a local int.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                continue;
            };
            if let Err(e) = monitor_notify_by_pid(pid, code) {
                containerd_shim::error!("exit of {pid}: {e}");
            }
        }
    }
}
