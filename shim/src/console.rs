//! The console socket: paddock connects to it and sends the pty master with SCM_RIGHTS (one
//! fd); the shim keeps the master to copy the terminal and to resize it.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

pub struct ConsoleSocket {
    dir: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// A listening socket in a fresh private directory under the temp dir (a short path: the
    /// bundle path can be longer than a socket address allows).
    pub fn new() -> Result<Self> {
        let tmp = std::env::temp_dir();
        let mut template = tmp
            .join("paddock-pty.XXXXXX")
            .into_os_string()
            .into_encoded_bytes();
        template.push(0);
        // SAFETY: template is NUL-terminated and writable; mkdtemp rewrites the XXXXXX in place.
        let p = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
        if p.is_null() {
            return Err(std::io::Error::last_os_error()).context("create console socket dir");
        }
        template.pop();
        // SAFETY: the bytes came from an OsString and mkdtemp only replaced ASCII characters.
        let dir =
            PathBuf::from(unsafe { std::ffi::OsString::from_encoded_bytes_unchecked(template) });
        let listener = match UnixListener::bind(dir.join("pty.sock")) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).context("bind console socket");
            }
        };
        Ok(Self { dir, listener })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("pty.sock")
    }

    /// The master the runtime sent. Called after `create`/`exec` succeeded, so the connection
    /// is already queued; non-blocking accept so that a runtime that sent nothing cannot hang us.
    pub fn receive_master(&self) -> Result<File> {
        self.listener
            .set_nonblocking(true)
            .context("console socket")?;
        let (conn, _) = self
            .listener
            .accept()
            .context("runtime did not connect to the console socket")?;
        conn.set_nonblocking(false).context("console socket")?;
        let mut name = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receive the pty master")?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().context("console socket message")? {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        match fds.as_slice() {
            // SAFETY: the fd was just received with SCM_RIGHTS and belongs to us alone.
            [fd] => Ok(unsafe { File::from_raw_fd(*fd) }),
            _ => {
                for fd in fds {
                    // SAFETY: received fds we do not keep.
                    drop(unsafe { File::from_raw_fd(fd) });
                }
                bail!("console socket: expected exactly one fd")
            }
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// TIOCSWINSZ on the pty master.
pub fn resize(master: &File, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: u16::try_from(height).context("height")?,
        ws_col: u16::try_from(width).context("width")?,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ioctl with a pointer to a winsize that lives through the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("resize pty");
    }
    Ok(())
}
