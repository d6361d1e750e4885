//! OOM notification for `events`: v1 registers an eventfd on memory.oom_control
//! through cgroup.event_control; v2 watches the oom_kill counter in memory.events.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Cgroup;

pub enum OomWatch {
    V1 {
        efd: OwnedFd,
        oom_control: PathBuf,
        last: u64,
        // Kept open: the registration lasts as long as this fd.
        _control: File,
    },
    V2 {
        events: PathBuf,
        last: u64,
    },
    /// No memory controller: nothing to watch.
    Off,
}

/// The "oom_kill N" counter of memory.oom_control (v1) or memory.events (v2).
fn oom_kills(path: &Path) -> Option<u64> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

impl OomWatch {
    pub fn new(cg: &Cgroup) -> Result<OomWatch> {
        if let Some(d) = cg.v1_dir("memory") {
            let oom_control = d.join("memory.oom_control");
            let control = File::open(&oom_control)
                .with_context(|| format!("open {}", oom_control.display()))?;
            // SAFETY: eventfd returns a new fd or -1.
            let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if raw < 0 {
                return Err(std::io::Error::last_os_error()).context("eventfd");
            }
            // SAFETY: raw is a fresh fd we own.
            let efd = unsafe { OwnedFd::from_raw_fd(raw) };
            let ctl = d.join("cgroup.event_control");
            fs::write(&ctl, format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()))
                .with_context(|| format!("write {}", ctl.display()))?;
            let last = oom_kills(&oom_control).unwrap_or(0);
            return Ok(OomWatch::V1 {
                efd,
                oom_control,
                last,
                _control: control,
            });
        }
        if let Some(d) = cg.v2_dir().filter(|_| cg.is_pure_v2()) {
            let events = d.join("memory.events");
            if events.exists() {
                let last = oom_kills(&events).unwrap_or(0);
                return Ok(OomWatch::V2 { events, last });
            }
        }
        Ok(OomWatch::Off)
    }

    /// Waits up to `timeout`; returns how many OOM events happened meanwhile.
    pub fn wait(&mut self, timeout: Duration) -> u64 {
        match self {
            OomWatch::V1 {
                efd,
                oom_control,
                last,
                ..
            } => {
                let mut pfd = libc::pollfd {
                    fd: efd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd.
                let n = unsafe { libc::poll(&mut pfd, 1, ms) };
                if n <= 0 {
                    return 0;
                }
                let mut buf = [0u8; 8];
                // SAFETY: the eventfd is ours; File only borrows it for one read.
                let mut f = unsafe { File::from_raw_fd(efd.as_raw_fd()) };
                let _ = f.read(&mut buf);
                std::mem::forget(f);
                // The eventfd also fires when the cgroup goes away: count only real OOMs.
                match oom_kills(oom_control) {
                    Some(now) => {
                        let new = now.saturating_sub(*last).max(1);
                        *last = now;
                        new
                    }
                    None => {
                        sleep(timeout);
                        0
                    }
                }
            }
            OomWatch::V2 { events, last } => {
                let deadline = Instant::now() + timeout;
                loop {
                    if let Some(now) = oom_kills(events) {
                        if now > *last {
                            let new = now - *last;
                            *last = now;
                            return new;
                        }
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return 0;
                    }
                    sleep(left.min(Duration::from_millis(50)));
                }
            }
            OomWatch::Off => {
                sleep(timeout);
                0
            }
        }
    }
}
