//! Process file descriptors: `pidfd_open`, and `--pidfd-socket`, where the caller
//! gets a pidfd of the container's init (or of an exec'd process) as runc sends it.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

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
        let iov = [IoSlice::new(msg.as_bytes())];
        let fds = [pidfd.as_raw_fd()];
        let cmsgs = [ControlMessage::ScmRights(&fds)];
        let sent = loop {
            match sendmsg::<()>(
                self.0.as_raw_fd(),
                &iov,
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        }
        .context("--pidfd-socket: failed to send pidfd on socket")?;
        if sent != msg.len() {
            bail!("--pidfd-socket: short send ({sent} of {} bytes)", msg.len());
        }
        Ok(())
    }
}
