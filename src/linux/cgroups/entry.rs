//! How a new process enters the container's cgroup without anyone migrating it
//! by pid. Writing a pid into cgroup.procs takes the kernel's global threadgroup
//! lock for writing, which waits for an RCU grace period: 4–17 ms measured on
//! this project's machines, more than the rest of `run`. Two ways skip that lock:
//! - v1: a single-threaded process writing "0" into a hierarchy's `tasks` file
//!   moves only itself, and the kernel takes no global lock for that;
//! - v2: clone3(CLONE_INTO_CGROUP) creates the process inside the cgroup.
//!
//! The parent opens everything before the clone (the files belong to the host;
//! the opener's credentials are what the kernel checks), the child writes.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Cgroup;

pub struct Entry {
    /// v1 `tasks` files, opened for writing, that the child writes "0" into.
    tasks: Vec<(File, PathBuf)>,
    /// The v2 cgroup directory, for clone3(CLONE_INTO_CGROUP).
    v2_dir: Option<(OwnedFd, PathBuf)>,
}

impl Cgroup {
    /// Opens what the child needs to enter this cgroup by itself.
    pub fn entry(&self) -> Result<Entry> {
        let mut entry = Entry {
            tasks: Vec::new(),
            v2_dir: None,
        };
        for (dir, h) in self.dirs.iter().zip(&self.hiers) {
            if h.v2 {
                let f = File::options()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                    .open(dir)
                    .with_context(|| format!("open cgroup {}", dir.display()))?;
                entry.v2_dir = Some((f.into(), dir.clone()));
            } else {
                let path = dir.join("tasks");
                let f = File::options()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)
                    .with_context(|| format!("open {}", path.display()))?;
                entry.tasks.push((f, path));
            }
        }
        Ok(entry)
    }
}

impl Entry {
    /// The fd for clone3's `cgroup` field, if there is a v2 hierarchy.
    pub fn v2_fd(&self) -> Option<RawFd> {
        self.v2_dir.as_ref().map(|(fd, _)| fd.as_raw_fd())
    }

    /// In the child, before anything else: move this (single-threaded) process
    /// into every v1 hierarchy's cgroup, then close every host fd held here.
    pub fn enter(&mut self) -> Result<()> {
        self.v2_dir = None;
        for (mut f, path) in self.tasks.drain(..) {
            f.write_all(b"0")
                .with_context(|| format!("join cgroup {}", path.display()))?;
        }
        Ok(())
    }

    /// Fallback where clone3 into the v2 cgroup was refused (old kernel, a
    /// seccomp filter on the host): the parent migrates the child by pid.
    pub fn join_v2_by_pid(&self, pid: i32) -> Result<()> {
        let Some((_, dir)) = &self.v2_dir else {
            return Ok(());
        };
        let f = dir.join("cgroup.procs");
        std::fs::write(&f, pid.to_string()).with_context(|| format!("join cgroup {}", f.display()))
    }
}
