//! Typed messages between paddock and the container's init over one
//! SOCK_SEQPACKET socketpair: one message per packet, so no framing is needed.
//!
//!   parent                         init (created in the v2 cgroup, if any)
//!   [id maps] Continue{state} -->
//!   [v1 cgroups, resources] CgroupsReady{tasks} + fds -->
//!                                  (init joins them before any cgroup mount)
//!                              <-- RunHooks      (mounts done, before pivot_root)
//!   [prestart, createRuntime] HooksDone -->
//!                              <-- Ready         (blocks on the exec fifo next)
//!   at any point               <-- Error{message}

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

const MAX_MESSAGE: usize = 64 * 1024;
/// Most fds one message carries (one per cgroup v1 hierarchy).
const MAX_FDS: usize = 32;

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum Message {
    /// Carries the hook state JSON (status "creating", init's host pid).
    Continue {
        state: String,
    },
    /// The v1 cgroup `tasks` files init writes itself into; the fds ride along.
    CgroupsReady {
        tasks: Vec<String>,
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

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<()> {
        self.send_with_fds(msg, &[])
    }

    /// One message with `fds` attached (SCM_RIGHTS) in the same packet.
    pub fn send_with_fds(&self, msg: &Message, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let mut data = serde_json::to_vec(msg).context("encode message")?;
        data.truncate(MAX_MESSAGE);
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let rights = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
        let iov = [IoSlice::new(&data)];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("send to peer"),
            }
        }
    }

    /// The next message, or None when the peer closed its end.
    pub fn recv(&self) -> Result<Option<Message>> {
        Ok(self.recv_with_fds()?.0)
    }

    /// The next message and the fds that came with it (close-on-exec).
    pub fn recv_with_fds(&self) -> Result<(Option<Message>, Vec<OwnedFd>)> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut fds = Vec::new();
        let n = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    for c in msg.cmsgs().context("receive from peer")? {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            // SAFETY: the kernel just installed these fds for us.
                            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                        }
                    }
                    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
                        bail!("receive from peer: too many fds in one message");
                    }
                    break msg.bytes;
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("receive from peer"),
            }
        };
        if n == 0 {
            return Ok((None, fds));
        }
        let msg = serde_json::from_slice(&buf[..n]).context("decode message")?;
        Ok((Some(msg), fds))
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

    #[test]
    fn fds_travel_with_their_message() {
        let (a, b) = pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let msg = Message::CgroupsReady {
            tasks: vec!["/dev/null".into()],
        };
        a.send_with_fds(&msg, &[std::os::fd::AsFd::as_fd(&f)])
            .unwrap();
        let (got, fds) = b.recv_with_fds().unwrap();
        assert_eq!(got, Some(msg));
        assert_eq!(fds.len(), 1);
        let flags = unsafe { libc::fcntl(fds[0].as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
