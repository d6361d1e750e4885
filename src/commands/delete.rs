use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::Globals;
use crate::cli::DeleteArgs;
use crate::error::RuntimeError;
use crate::linux::{
    cgroups::{systemd, Cgroup},
    hooks, rootfs,
};
use crate::state::{is_alive, Container, StateDir, Status};

/// How long delete waits for killed processes to be gone before removing the cgroup.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub fn delete(g: &Globals, args: &DeleteArgs) -> Result<()> {
    let sd = match StateDir::open(&g.root, &args.id) {
        Ok(sd) => sd,
        // As runc: forcing the delete of a container that is already gone succeeds.
        Err(e) if args.force && matches!(e.downcast_ref(), Some(RuntimeError::NotExist)) => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let c = match sd.load() {
        Ok(c) => c,
        // `create` was killed before it wrote any state: nothing but the dir to remove.
        Err(e) if args.force && matches!(e.downcast_ref(), Some(RuntimeError::NotExist)) => {
            return sd.remove();
        }
        Err(e) => return Err(e),
    };
    match c.status() {
        // As runc: a created container is killed and deleted without --force (the
        // spec asks for an error; callers rely on runc's behaviour). A container left
        // "creating" by a killed create has no live init.
        Status::Stopped | Status::Creating | Status::Created => {}
        s if !args.force => {
            bail!(
                "cannot delete container {} that is not stopped: {}",
                c.id,
                s.as_str()
            )
        }
        _ => {}
    }
    destroy(sd, &c)
}

/// Kills whatever is left, removes the cgroup, runs poststop hooks and the state dir.
pub fn destroy(sd: StateDir, c: &Container) -> Result<()> {
    let cg = Cgroup::open(Path::new(&c.cgroup_path))?;
    kill_everything(c, &cg);
    if let Some(m) = &c.host_rootfs_mount {
        // runc leaves these on the host; every mount made for the container goes.
        // What cannot go (something else covers the rootfs) must not block delete.
        if let Err(e) = rootfs::detach_mounts_above(&m.path, m.below) {
            crate::logger::warn(&format!("{e:#}"));
        }
    }
    if c.systemd_cgroup {
        stop_unit(systemd::unit_name(&c.cgroup_path));
    }
    cg.remove()?;
    sd.remove()?;
    // As runc 1.5: poststop hooks run once the state is gone, and a failing one fails
    // the delete (the spec would only warn) after everything was removed.
    if let Some(h) = &c.hooks {
        let poststop = h.poststop().as_deref().unwrap_or_default();
        hooks::run_hooks("poststop", poststop, &c.hook_state(Status::Stopped))
            .context("unable to destroy container")?;
    }
    Ok(())
}

/// As runc: the unit is stopped once its processes are gone; a bus that cannot
/// be reached is only a warning (the cgroup files are removed anyway).
fn stop_unit(name: &str) {
    if let Err(e) = systemd::Manager::connect().and_then(|mut m| m.stop(name)) {
        crate::logger::warn(&format!("unable to stop unit {name}: {e:#}"));
    }
}

/// SIGKILL to init and every process in the cgroup, until they are gone (bounded).
pub fn kill_everything(c: &Container, cg: &Cgroup) {
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let init_alive = c.pid > 0 && is_alive(c.pid, c.start_time);
        let pids = cg.pids();
        if !init_alive && pids.is_empty() {
            return;
        }
        // SAFETY: SIGKILL to the verified init and to members of the container's cgroup.
        unsafe {
            if init_alive {
                libc::kill(c.pid, libc::SIGKILL);
            }
            for pid in pids {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if Instant::now() > deadline {
            return;
        }
        sleep(Duration::from_millis(5));
    }
}
