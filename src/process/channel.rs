//! Typed messages between paddock and the container's init over one
//! SOCK_SEQPACKET socketpair: one message per packet, so no framing is needed.
//!
//!   parent                         init (first joins its cgroup: cgroups/entry.rs)
//!   [id maps] Continue{state} -->
//!                              <-- RunHooks      (mounts done, before pivot_root)
//!   [prestart, createRuntime] HooksDone -->
//!                              <-- Ready         (blocks on the exec fifo next)
//!   at any point               <-- Error{message}
//!
//! Where a second fork is needed (hop.rs), the first child reports the second's
//! pid with Forked{pid} before anything else.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum Message {
    /// Carries the hook state JSON (status "creating", init's host pid).
    Continue {
        state: String,
    },
    /// The pid of the process forked into a joined user namespace (hop.rs).
    Forked {
        pid: i32,
    },
    RunHooks,
    HooksDone,
    Ready,
    Error {
        message: String,
    },
}

pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair; both ends are close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into the array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("socketpair");
    }
    // SAFETY: both fds were just created and are owned by nothing else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl std::os::fd::AsRawFd for Channel {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<()> {
        let mut data = serde_json::to_vec(msg).context("encode message")?;
        data.truncate(MAX_MESSAGE);
        // SAFETY: send from a valid buffer on a valid socket.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("send to peer");
        }
        Ok(())
    }

    /// The next message, or None when the peer closed its end.
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            // SAFETY: recv into a buffer of the stated length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                break n as usize;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err).context("receive from peer");
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .context("decode message")
    }

    /// Waits for one particular message; an Error from the peer becomes our error.
    pub fn expect(&self, want: Message) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Message::Error { message }) => bail!("{message}"),
            Some(other) => bail!("protocol error: expected {want:?}, got {other:?}"),
            None => bail!("peer exited before sending {want:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_none() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Error {
            message: "boom".into(),
        })
        .unwrap();
        a.send(&Message::Ready).unwrap();
        assert!(b.expect(Message::Ready).unwrap_err().to_string() == "boom");
        b.expect(Message::Ready).unwrap();
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
