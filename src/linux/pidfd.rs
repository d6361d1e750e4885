//! Process file descriptors: `pidfd_open`, and `--pidfd-socket`, where the caller
//! gets a pidfd of the container's init (or of an exec'd process) as runc sends it.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A pidfd of `pid` (close-on-exec).
pub fn open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// What runc names the process in the message that carries its pidfd.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// The container's init ("standard" in runc).
    Init,
    /// A process started by exec ("setns" in runc).
    Exec,
}

impl Kind {
    fn message(self) -> &'static str {
        match self {
            Kind::Init => "standard",
            Kind::Exec => "setns",
        }
    }
}

/// The caller's `--pidfd-socket`, connected before anything is started so a bad
/// path fails the command with nothing made.
pub struct PidfdSocket(UnixStream);

impl PidfdSocket {
    pub fn connect(path: &Path) -> Result<PidfdSocket> {
        // As runc: pidfds came with Linux 5.3.
        // SAFETY: getpid cannot fail.
        if let Err(e) = open(unsafe { libc::getpid() }) {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                bail!("--pidfd-socket requires >= v5.3 kernel");
            }
        }
        let s = UnixStream::connect(path)
            .with_context(|| format!("--pidfd-socket: failed to dial {}", path.display()))?;
        Ok(PidfdSocket(s))
    }

    /// Sends one message, runc's name of the process, carrying a pidfd of `pid`.
    pub fn send(&self, pid: i32, kind: Kind) -> Result<()> {
        let pidfd = open(pid).context("--pidfd-socket: failed to pidfd_open")?;
        let msg = kind.message();
        crate::linux::tty::send_one_fd(self.0.as_fd(), msg.as_bytes(), pidfd.as_fd())
            .context("--pidfd-socket: failed to send pidfd on socket")?;
        Ok(())
    }
}
