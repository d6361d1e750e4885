use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::notify_socket::NotifySocket;
use super::Globals;
use crate::linux::{cgroups::Cgroup, hooks};
use crate::state::{Container, StateDir, Status};

/// Releases init from the exec fifo, records "running", then runs poststart hooks.
pub fn start(g: &Globals, id: &str) -> Result<()> {
    let sd = StateDir::open(&g.root, id)?;
    let mut c = sd.load()?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Creating => bail!("cannot start a container that is still being created"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
    }
    let notify = NotifySocket::bind(&sd.dir)?;
    release(&sd, &mut c)?;
    // Unlocked while we wait: the container can be inspected, killed or exec'd.
    drop(sd);
    match notify {
        // As runc: start returns once the container said READY= (or init exited).
        Some(n) => n.forward_ready(c.pid, c.start_time),
        None => Ok(()),
    }
}

/// `start` of a container known to be created, with its state dir locked: `run`
/// comes here straight from create.
pub fn release(sd: &StateDir, c: &mut Container) -> Result<()> {
    // Non-blocking: with no reader (init died) open fails with ENXIO instead of hanging.
    let fifo = sd.fifo_path();
    let mut f = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => bail!("container not running"),
        Err(e) => return Err(e).with_context(|| format!("open exec fifo {}", fifo.display())),
    };
    f.write_all(b"0").context("write exec fifo")?;
    crate::logger::debug(&format!("released init of {} (pid {})", c.id, c.pid));
    wait_for_exec(&f);
    drop(f);
    let _ = std::fs::remove_file(&fifo);
    c.recorded = Status::Running;
    sd.save(c)?;
    if let Some(h) = &c.hooks {
        let state = c.hook_state(Status::Running);
        let poststart = h.poststart().as_deref().unwrap_or_default();
        // The spec (1.3): a failing poststart hook is an error that stops the
        // container; `delete` then destroys it and runs the poststop hooks.
        if let Err(e) = hooks::run_hooks("poststart", poststart, &state) {
            super::delete::kill_everything(c, &Cgroup::open(Path::new(&c.cgroup_path))?);
            return Err(e);
        }
    }
    Ok(())
}

/// How long start waits for init to reach execve (startContainer hooks run first).
const EXEC_WAIT: Duration = Duration::from_secs(10);

/// Init's fifo fd is close-on-exec, so once it has exec'd (or died) our write end
/// has no reader left and poll reports POLLERR. Returning only then means a signal
/// sent right after `start` reaches the user's program, not our init.
fn wait_for_exec(fifo: &std::fs::File) {
    let mut pfd = libc::pollfd {
        fd: fifo.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, EXEC_WAIT.as_millis() as libc::c_int) };
}
