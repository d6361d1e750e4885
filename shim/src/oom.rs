//! OOM events. One watcher thread for the whole shim waits on an epoll set: per container a
//! cgroup v1 eventfd registered on memory.oom_control, or on cgroup v2 an inotify watch of
//! memory.events whose oom_kill count is compared. (A thread is needed: the crate's ttrpc
//! server owns the main loop.)

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::topics::TASK_OOM_EVENT_TOPIC;

use crate::events::Events;
use crate::stats::{cgroup_paths, CgroupPaths};

struct Entry {
    id: String,
    fd: OwnedFd,
    /// v2: memory.events and the last oom_kill count seen; v1: the oom_control file kept open.
    v2: Option<(PathBuf, u64)>,
    _control: Option<File>,
}

struct Watcher {
    epoll: OwnedFd,
    entries: Mutex<HashMap<u64, Entry>>,
    events: Events,
}

static WATCHER: OnceLock<Watcher> = OnceLock::new();
static EVENTS: OnceLock<Events> = OnceLock::new();

pub fn start(events: Events) {
    let _ = EVENTS.set(events);
}

/// Watch the memory cgroup of `pid` for container `id`; failures are logged, not fatal.
pub fn watch(id: &str, pid: u32) {
    if let Err(e) = try_watch(id, pid) {
        containerd_shim::warn!("oom watch for {id}: {e:#}");
    }
}

/// Stop watching container `id`.
pub fn forget(id: &str) {
    if let Some(w) = WATCHER.get() {
        let mut entries = w.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| {
            if e.id != id {
                return true;
            }
            // SAFETY: removing an fd we registered; a null event pointer is allowed for DEL.
            unsafe {
                libc::epoll_ctl(
                    w.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    e.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
            false
        });
    }
}

fn watcher() -> Result<&'static Watcher> {
    if let Some(w) = WATCHER.get() {
        return Ok(w);
    }
    let events = EVENTS.get().context("oom watcher not started")?.clone();
    // SAFETY: plain syscall; the fd is owned at once.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        bail!("epoll_create1: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
    let w = WATCHER.get_or_init(|| Watcher {
        epoll,
        entries: Mutex::new(HashMap::new()),
        events,
    });
    std::thread::Builder::new()
        .name("oom".into())
        .stack_size(128 * 1024)
        .spawn(|| run(w))
        .context("start the oom watcher")?;
    Ok(w)
}

fn try_watch(id: &str, pid: u32) -> Result<()> {
    let paths = cgroup_paths(pid)?;
    let w = watcher()?;
    let entry = match paths {
        CgroupPaths::V1(map) => {
            let dir = map.get("memory").context("no memory cgroup")?;
            let control =
                File::open(dir.join("memory.oom_control")).context("open memory.oom_control")?;
            // SAFETY: plain syscall; the fd is owned at once.
            let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if efd < 0 {
                bail!("eventfd: {}", std::io::Error::last_os_error());
            }
            // SAFETY: efd is fresh and ours.
            let fd = unsafe { OwnedFd::from_raw_fd(efd) };
            std::fs::write(
                dir.join("cgroup.event_control"),
                format!("{} {}", fd.as_raw_fd(), control.as_raw_fd()),
            )
            .context("register the oom eventfd")?;
            Entry {
                id: id.to_string(),
                fd,
                v2: None,
                _control: Some(control),
            }
        }
        CgroupPaths::V2(dir) => {
            let events = dir.join("memory.events");
            // SAFETY: plain syscall; the fd is owned at once.
            let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if ifd < 0 {
                bail!("inotify_init1: {}", std::io::Error::last_os_error());
            }
            // SAFETY: ifd is fresh and ours.
            let fd = unsafe { OwnedFd::from_raw_fd(ifd) };
            let c =
                std::ffi::CString::new(events.as_os_str().as_encoded_bytes()).context("path")?;
            // SAFETY: valid fd and NUL-terminated path.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
                bail!(
                    "inotify on {}: {}",
                    events.display(),
                    std::io::Error::last_os_error()
                );
            }
            let count = oom_kills(&events);
            Entry {
                id: id.to_string(),
                fd,
                v2: Some((events, count)),
                _control: None,
            }
        }
    };
    let token = u64::try_from(entry.fd.as_raw_fd()).context("fd")?;
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: both fds are valid; ev lives through the call.
    if unsafe {
        libc::epoll_ctl(
            w.epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            entry.fd.as_raw_fd(),
            &mut ev,
        )
    } < 0
    {
        bail!("epoll_ctl: {}", std::io::Error::last_os_error());
    }
    w.entries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(token, entry);
    Ok(())
}

fn oom_kills(events: &std::path::Path) -> u64 {
    std::fs::read_to_string(events)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn run(w: &Watcher) {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
    loop {
        // SAFETY: evs is a writable array of the length passed.
        let n = unsafe { libc::epoll_wait(w.epoll.as_raw_fd(), evs.as_mut_ptr(), 8, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            containerd_shim::error!("oom watcher: {}", std::io::Error::last_os_error());
            return;
        }
        for ev in evs.iter().take(usize::try_from(n).unwrap_or(0)) {
            let token = ev.u64;
            let mut entries = w.entries.lock().unwrap_or_else(|e| e.into_inner());
            let Some(e) = entries.get_mut(&token) else {
                continue;
            };
            let mut buf = [0u8; 4096];
            // SAFETY: reading into a local buffer from an fd we own (eventfd: 8 bytes; inotify: records).
            let _ = unsafe { libc::read(e.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let oom = match &mut e.v2 {
                None => {
                    // The eventfd also fires when the cgroup is removed.
                    let alive = e
                        ._control
                        .as_mut()
                        .is_some_and(|f| f.read(&mut [0u8; 1]).is_ok());
                    if !alive {
                        entries.remove(&token);
                        continue;
                    }
                    true
                }
                Some((path, last)) => {
                    let now = oom_kills(path);
                    let more = now > *last;
                    *last = now;
                    more
                }
            };
            if oom {
                w.events.send(
                    TASK_OOM_EVENT_TOPIC,
                    TaskOOM {
                        container_id: e.id.clone(),
                        ..Default::default()
                    },
                );
            }
        }
    }
}
