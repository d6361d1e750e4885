//! How a new process enters the container's cgroup without anyone migrating it
//! by pid. Writing a pid into cgroup.procs takes the kernel's global threadgroup
//! lock for writing, which waits for an RCU grace period: 4–17 ms measured on
//! this project's machines, more than the rest of `run`. Two ways skip that lock:
//! - v1: a single-threaded process writing "0" into a hierarchy's `tasks` file
//!   moves only itself, and the kernel takes no global lock for that;
//! - v2: clone3(CLONE_INTO_CGROUP) creates the process inside the cgroup.
//!
//! The parent opens the files (they belong to the host, and the opener's
//! credentials are what the kernel checks); the child writes.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::Cgroup;

/// The v1 `tasks` files of a cgroup, open for writing, with their paths for errors.
#[derive(Default)]
pub struct Tasks(Vec<(File, PathBuf)>);

impl Cgroup {
    pub fn v1_tasks(&self) -> Result<Tasks> {
        let mut tasks = Vec::new();
        for (dir, h) in self.dirs.iter().zip(&self.hiers) {
            if !h.v2 {
                let path = dir.join("tasks");
                let f = File::options()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)
                    .with_context(|| format!("open {}", path.display()))?;
                tasks.push((f, path));
            }
        }
        Ok(Tasks(tasks))
    }

    /// The v2 directory, opened for clone3's `cgroup` field.
    pub fn v2_dir_fd(&self) -> Result<Option<OwnedFd>> {
        let Some(dir) = self.v2_dir() else {
            return Ok(None);
        };
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .with_context(|| format!("open cgroup {}", dir.display()))?;
        Ok(Some(f.into()))
    }

    /// Fallback where clone3 into the v2 cgroup was refused (old kernel, a
    /// seccomp filter on the host): the parent migrates the child by pid.
    pub fn join_v2_by_pid(&self, pid: i32) -> Result<()> {
        let Some(dir) = self.v2_dir() else {
            return Ok(());
        };
        let f = dir.join("cgroup.procs");
        std::fs::write(&f, pid.to_string()).with_context(|| format!("join cgroup {}", f.display()))
    }
}

impl Tasks {
    /// In the (single-threaded) child: moves itself into every hierarchy, then
    /// closes the files, so that init holds no host fd while it waits for start.
    pub fn join_self(self) -> Result<()> {
        for (mut f, path) in self.0 {
            f.write_all(b"0")
                .with_context(|| format!("join cgroup {}", path.display()))?;
        }
        Ok(())
    }

    /// The paths and fds to send to a child over a unix socket.
    pub fn parts(&self) -> (Vec<String>, Vec<BorrowedFd<'_>>) {
        self.0
            .iter()
            .map(|(f, p)| (p.to_string_lossy().into_owned(), f.as_fd()))
            .unzip()
    }

    /// The child's side of `parts`.
    pub fn from_parts(paths: Vec<String>, fds: Vec<OwnedFd>) -> Result<Tasks> {
        if paths.len() != fds.len() {
            bail!(
                "protocol error: {} cgroup paths but {} fds",
                paths.len(),
                fds.len()
            );
        }
        let files = fds.into_iter().map(File::from);
        Ok(Tasks(
            files.zip(paths.into_iter().map(PathBuf::from)).collect(),
        ))
    }
}
