//! The container's console: a pty pair from the container's own devpts, the master handed
//! to the caller over `--console-socket`, the slave made the init's controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::{fstat, major, minor, SFlag};
use nix::unistd::dup2;
use oci_spec::runtime::Box as ConsoleSize;

use crate::linux::safepath::open_in_root;

/// Device numbers of /dev/ptmx and of pty slaves (UNIX98_PTY_SLAVE_MAJOR).
const PTMX_MAJOR: u64 = 5;
const PTMX_MINOR: u64 = 2;
const PTY_SLAVE_MAJOR: u64 = 136;
/// Every major the kernel may give Unix98 pty slaves (136-143).
const PTY_SLAVE_MAJORS: std::ops::RangeInclusive<u64> = 136..=143;

/// Opens a new pty pair from the devpts mounted at `<rootfs>/dev/pts`. Both ends are
/// close-on-exec; `make_controlling_stdio` gives the slave to the container process.
pub fn open_pty(root: BorrowedFd<'_>) -> Result<(OwnedFd, OwnedFd)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    let master = open_in_root(root, Path::new("/dev/pts/ptmx"), flags)
        .context("open the container's /dev/pts/ptmx")?;
    check_char_device(&master, "/dev/pts/ptmx", |maj, min| {
        maj == PTMX_MAJOR && min == PTMX_MINOR
    })?;
    unlock(&master)?;
    let slave = open_peer(&master)?;
    check_char_device(&slave, "pty slave", |maj, _| maj == PTY_SLAVE_MAJOR)?;
    Ok((master, slave))
}

/// Sets the window size from `process.consoleSize` (height = rows, width = columns);
/// as in runc, a size with a zero side is no size.
pub fn set_size(master: BorrowedFd<'_>, size: Option<&ConsoleSize>) -> Result<()> {
    let Some(size) = size.filter(|s| s.height() != 0 && s.width() != 0) else {
        return Ok(());
    };
    let to_u16 = |value: u64, field: &str| {
        u16::try_from(value)
            .with_context(|| format!("process.consoleSize.{field}: {value} is larger than 65535"))
    };
    let winsize = libc::winsize {
        ws_row: to_u16(size.height(), "height")?,
        ws_col: to_u16(size.width(), "width")?,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    let rc = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSWINSZ,
            &winsize as *const libc::winsize,
        )
    };
    Errno::result(rc).context("set console size (TIOCSWINSZ)")?;
    Ok(())
}

/// Sends the master over the connected console socket: exactly one fd in one SCM_RIGHTS
/// message, with the pty's name as payload. A buffered send on a connected socket never
/// waits for the receiver, which accepts the connection only after `create` has exited.
pub fn send_to_console_socket(socket: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<()> {
    let name = pty_name(master)?;
    send_one_fd(socket, name.as_bytes(), master).context("send the console to --console-socket")
}

/// One message with `payload` and exactly one fd (SCM_RIGHTS), as runc's callers expect
/// on its console and pidfd sockets; retried on EINTR, a short send is an error.
pub fn send_one_fd(socket: BorrowedFd<'_>, payload: &[u8], fd: BorrowedFd<'_>) -> Result<()> {
    let iov = [IoSlice::new(payload)];
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let sent = loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    }?;
    if sent != payload.len() {
        bail!("short send ({sent} of {} bytes)", payload.len());
    }
    Ok(())
}

/// As runc on its side of the pty: no "\n" to "\r\n" translation there, so a caller
/// reading our stdout through a pipe gets the program's bytes; a caller's terminal
/// still translates them itself (HostConsole keeps its output processing).
pub fn clear_onlcr(master: BorrowedFd<'_>) -> Result<()> {
    use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
    let mut t = tcgetattr(master).context("get the console's attributes")?;
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(master, SetArg::TCSANOW, &t).context("clear ONLCR on the console")
}

/// Makes `slave` the stdin/stdout/stderr and the controlling terminal of the calling
/// process, which must already be a session leader (after setsid).
pub fn make_controlling_stdio(slave: BorrowedFd<'_>) -> Result<()> {
    let fd = slave.as_raw_fd();
    for target in 0..=2 {
        if fd == target {
            // dup2 onto itself would keep close-on-exec set; clear it instead.
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .with_context(|| format!("clear close-on-exec on console fd {fd}"))?;
        } else {
            dup2(fd, target).with_context(|| format!("dup console onto fd {target}"))?;
        }
    }
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal from another session).
    let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    Errno::result(rc).context("make the console the controlling terminal (TIOCSCTTY)")?;
    Ok(())
}

/// As runc does before the user changes: each of fds 0-2 that is a pty slave is
/// chowned to `uid` (the group stays devpts's), so the process's own user can use
/// its terminal. Call it only when stdio is the container's own console: unlike runc,
/// paddock never chowns inherited stdio (a caller's file or host tty), which would
/// hand a host inode to a host uid that the container's user may map to.
pub fn give_stdio_pty_to(uid: u32) -> Result<()> {
    for fd in 0..=2 {
        let Ok(st) = fstat(fd) else {
            continue;
        };
        let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
        if !is_char || !PTY_SLAVE_MAJORS.contains(&major(st.st_rdev)) || st.st_uid == uid {
            continue;
        }
        match nix::unistd::fchown(fd, Some(uid.into()), None) {
            // As runc: an unmapped owner or a read-only /dev is not worth failing for.
            Ok(()) | Err(Errno::EPERM) | Err(Errno::EROFS) => {}
            Err(e) => return Err(e).with_context(|| format!("chown console fd {fd} to {uid}")),
        }
    }
    Ok(())
}

/// The slave's path as the container sees it, from the pty number.
fn pty_name(master: BorrowedFd<'_>) -> Result<String> {
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through a valid pointer.
    let rc = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTN,
            &mut number as *mut libc::c_uint,
        )
    };
    Errno::result(rc).context("get pty number (TIOCGPTN)")?;
    Ok(format!("/dev/pts/{number}"))
}

fn unlock(master: &OwnedFd) -> Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through a valid pointer.
    let rc = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSPTLCK,
            &unlock as *const libc::c_int,
        )
    };
    Errno::result(rc).context("unlock pty (TIOCSPTLCK)")?;
    Ok(())
}

/// Opens the slave through the master (no path lookup, so nothing in the rootfs can
/// substitute another device for it).
fn open_peer(master: &OwnedFd) -> Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags as an integer and returns a new fd.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = Errno::result(fd).context("open pty slave (TIOCGPTPEER)")?;
    // SAFETY: the ioctl just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check_char_device(fd: &OwnedFd, what: &str, expected: impl Fn(u64, u64) -> bool) -> Result<()> {
    let st = fstat(fd.as_raw_fd()).with_context(|| format!("fstat {what}"))?;
    let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    let (maj, min) = (major(st.st_rdev), minor(st.st_rdev));
    if !is_char || !expected(maj, min) {
        bail!(
            "{what} is not a pty device (mode {:o}, device {maj}:{min})",
            st.st_mode
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    fn host_root() -> OwnedFd {
        let fd = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // SAFETY: fresh descriptor from open.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// The host's /dev/pts/ptmx is usually mode 000: only root can use it.
    fn can_open_ptys() -> bool {
        nix::unistd::geteuid().is_root() && Path::new("/dev/pts/ptmx").exists()
    }

    #[test]
    fn pty_pair_window_size_and_console_socket() {
        if !can_open_ptys() {
            return;
        }
        let root = host_root();
        let (master, slave) = open_pty(root.as_fd()).unwrap();

        let size: ConsoleSize = serde_json::from_str(r#"{"height": 40, "width": 132}"#).unwrap();
        set_size(master.as_fd(), Some(&size)).unwrap();
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize through a valid pointer.
        assert_eq!(
            unsafe {
                libc::ioctl(
                    slave.as_raw_fd(),
                    libc::TIOCGWINSZ,
                    &mut ws as *mut libc::winsize,
                )
            },
            0
        );
        assert_eq!((ws.ws_row, ws.ws_col), (40, 132));

        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        send_to_console_socket(ours.as_fd(), master.as_fd()).unwrap();
        let (payload, received) = receive_one_fd(&theirs);
        assert_eq!(payload, pty_name(master.as_fd()).unwrap());
        check_char_device(&received, "received", |maj, min| maj == 5 && min == 2).unwrap();
    }

    #[test]
    fn oversized_console_is_rejected() {
        if !can_open_ptys() {
            return;
        }
        let (master, _slave) = open_pty(host_root().as_fd()).unwrap();
        let size: ConsoleSize = serde_json::from_str(r#"{"height": 70000, "width": 80}"#).unwrap();
        let err = set_size(master.as_fd(), Some(&size))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "process.consoleSize.height: 70000 is larger than 65535"
        );
        set_size(master.as_fd(), None).unwrap();
    }

    /// Receives like conmon and go-runc do, checking the control message's exact size.
    fn receive_one_fd(socket: &OwnedFd) -> (String, OwnedFd) {
        let mut buf = [0u8; 4096];
        // Room for two fds, so an extra one would show up as a size mismatch.
        let mut control = [0u8; 64];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: zeroed msghdr is valid; pointers below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len() as _;
        // SAFETY: msg describes live buffers.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        assert!(n > 0);
        let int_size = std::mem::size_of::<libc::c_int>() as u32;
        // SAFETY: CMSG_* only compute sizes / walk the buffer described by msg.
        unsafe {
            assert_eq!(
                msg.msg_controllen as usize,
                libc::CMSG_SPACE(int_size) as usize
            );
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            assert!(!cmsg.is_null());
            assert_eq!((*cmsg).cmsg_level, libc::SOL_SOCKET);
            assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
            assert_eq!((*cmsg).cmsg_len as usize, libc::CMSG_LEN(int_size) as usize);
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
            let payload = String::from_utf8(buf[..n as usize].to_vec()).unwrap();
            (payload, OwnedFd::from_raw_fd(fd))
        }
    }
}
