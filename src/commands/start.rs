use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context, Result};

use super::Globals;
use crate::linux::hooks;
use crate::state::{StateDir, Status};

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
    drop(f);
    let _ = std::fs::remove_file(&fifo);
    c.recorded = Status::Running;
    sd.save(&c)?;
    if let Some(h) = &c.hooks {
        let state = c.hook_state(Status::Running);
        let poststart = h.poststart().as_deref().unwrap_or_default();
        // The spec: a failing poststart hook is a warning; the container keeps running.
        if let Err(e) = hooks::run_hooks("poststart", poststart, &state) {
            crate::logger::warn(&format!("{e:#}"));
            crate::logger::write_stderr(&format!("warning: {e:#}\n"));
        }
    }
    Ok(())
}
