//! The last step of init and exec processes: execveat of the sealed exec tail
//! (tail/tail.rs, linux/exeseal.rs), which waits for start and execs the program, so
//! that the program never starts from our binary.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::runtime::{Hooks, Linux, Process};

use super::channel::Channel;

/// Whether the process needs paddock itself after the point where it would exec the
/// tail, which only waits for start and execs. A seccomp filter is one such thing:
/// loaded before the tail, it would have to allow the tail's own syscalls; loaded by
/// it, the filter would not yet be on while execve briefly leaves the tail dumpable,
/// and a container process that ptrace-attached then would run unfiltered.
pub fn needs_paddock(
    process: Option<&Process>,
    linux: Option<&Linux>,
    hooks: Option<&Hooks>,
) -> bool {
    let set = |s: Option<&String>| s.is_some_and(|s| !s.is_empty());
    // Applied at the next execve: that would be the tail's.
    let labelled = process
        .is_some_and(|p| set(p.apparmor_profile().as_ref()) || set(p.selinux_label().as_ref()));
    let filtered = linux.is_some_and(|l| l.seccomp().is_some());
    let start_hooks = hooks
        .and_then(|h| h.start_container().as_ref())
        .is_some_and(|h| !h.is_empty());
    labelled || filtered || start_hooks
}

/// Execs the tail; with `fifo` (init) it reports Ready and waits for start first.
/// The channel and the fifo are passed open across the exec. Returns only on failure;
/// signals must already be reset.
pub fn exec(
    tail: &OwnedFd,
    chan: &Channel,
    fifo: Option<&OwnedFd>,
    exe: &Path,
    process: &Process,
    env: &[String],
) -> Result<Infallible> {
    let fd_arg = |fd: Option<RawFd>| -> Result<CString> {
        match fd {
            Some(fd) => {
                keep_across_exec(fd)?;
                Ok(CString::new(fd.to_string())?)
            }
            None => Ok(c"-".into()),
        }
    };
    let to_c = |s: &str| CString::new(s).with_context(|| format!("process: NUL byte in {s:?}"));
    let mut argv = vec![
        c"paddock-init".into(),
        fd_arg(Some(chan.as_raw_fd()))?,
        fd_arg(fifo.map(|f| f.as_raw_fd()))?,
        CString::new(exe.as_os_str().as_bytes()).context("process.args[0]: NUL byte")?,
    ];
    for a in process.args().as_deref().unwrap_or_default() {
        argv.push(to_c(a)?);
    }
    let envp = env.iter().map(|s| to_c(s)).collect::<Result<Vec<_>>>()?;
    let err = crate::linux::exeseal::exec_fd(tail.as_raw_fd(), &argv, &envp);
    Err(err).context("exec the sealed exec tail")
}

fn keep_across_exec(fd: RawFd) -> Result<()> {
    // SAFETY: clearing FD_CLOEXEC on an fd we own.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pass an fd to the exec tail");
    }
    Ok(())
}
