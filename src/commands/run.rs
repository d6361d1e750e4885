use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Result;

use super::notify_socket::NotifySocket;
use super::{create, start, Globals};
use crate::cli::RunArgs;
use crate::state::{Container, StateDir};

static INIT_PID: AtomicI32 = AtomicI32::new(0);

/// create + start; in the foreground, forwards signals, waits, deletes, and
/// returns the container's exit code (128+signal when it was killed).
pub fn run(g: &Globals, args: &RunArgs) -> Result<i32> {
    let id = &args.create.id;
    if !args.detach && !args.no_subreaper {
        // As runc: processes the container orphans outside its own pid namespace
        // become ours, and we reap them, rather than the host's init.
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            anyhow::bail!(
                "prctl PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    // In the foreground a terminal without --console-socket is proxied by us.
    let caller = create::Caller::Run {
        proxy_console: !args.detach,
    };
    let mut created = create::create_container(g, &args.create, caller)?;
    let started = match &created.console {
        Some(sock) => super::console_proxy::receive_master(sock).map(Some),
        None => Ok(None),
    }
    .and_then(|master| {
        // Bound before init runs, so its READY= cannot be sent to nothing.
        let notify = NotifySocket::bind(&created.state_dir.dir)?;
        start::release(&created.state_dir, &mut created.container)?;
        Ok((master, notify))
    });
    let (master, notify) = match started {
        Ok(m) => m,
        Err(e) => {
            destroy(created.state_dir, &created.container, id);
            return Err(e);
        }
    };
    // Unlocked from here: kill, exec and state must work while it runs.
    drop(created.state_dir);
    if args.detach {
        forward_ready(notify, &created.container);
        return Ok(0);
    }
    forward_signals_to(created.pid);
    // Known limit: a proxied terminal is copied only after this, so a container that
    // fills it before sending READY= blocks, and we with it, until it is killed
    // (runc copies the terminal meanwhile).
    forward_ready(notify, &created.container);
    let code = match master {
        Some(m) => super::console_proxy::proxy(m, created.pid)?,
        None => crate::process::wait_exit_code(created.pid)?,
    };
    if !args.keep {
        remove(g, id);
    }
    reap_orphans();
    Ok(code)
}

/// As runc, `run` waits for the container's READY= when there is a notify socket
/// but does not fail on it. Unlike runc in the foreground, which waits on its own
/// pid, we stop waiting once init has exited, so a container that never sends
/// READY= cannot keep us from reporting its exit.
fn forward_ready(notify: Option<NotifySocket>, c: &Container) {
    if let Some(n) = notify {
        if let Err(e) = n.forward_ready(c.pid, c.start_time) {
            crate::logger::debug(&format!("notify socket of {}: {e:#}", c.id));
        }
    }
}

/// Collects the exit status of orphans we adopted as subreaper, so none stays a zombie.
fn reap_orphans() {
    // SAFETY: waitpid with a null status pointer, never blocking.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn remove(g: &Globals, id: &str) {
    match StateDir::open(&g.root, id).and_then(|sd| sd.load().map(|c| (sd, c))) {
        Ok((sd, c)) => destroy(sd, &c, id),
        Err(e) => crate::logger::warn(&format!("remove container {id}: {e:#}")),
    }
}

fn destroy(sd: StateDir, c: &Container, id: &str) {
    if let Err(e) = super::delete::destroy(sd, c) {
        crate::logger::warn(&format!("remove container {id}: {e:#}"));
    }
}

extern "C" fn forward(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forwards the usual terminal and job-control signals to `pid` from now on.
pub fn forward_signals_to(pid: i32) {
    INIT_PID.store(pid, Ordering::SeqCst);
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: installing an async-signal-safe handler.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
}
