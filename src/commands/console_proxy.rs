//! `run` with process.terminal and no --console-socket: like runc, paddock keeps
//! the pty master itself and copies between it and its own stdin/stdout.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, OutputFlags, SetArg, Termios};

static RESIZED: AtomicBool = AtomicBool::new(false);

/// The pty master init sends over our end of the console socketpair.
pub fn receive_master(sock: &UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receive the container's console")?;
    for cmsg in msg.cmsgs().context("read console control message")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                let master = unsafe { OwnedFd::from_raw_fd(fd) };
                crate::linux::tty::clear_onlcr(master.as_fd())?;
                return Ok(master);
            }
        }
    }
    bail!("container init sent no console fd")
}

/// The caller's terminal, as runc finds it: the first of stderr, stdout and stdin
/// that is a tty, else the controlling terminal. It is put in raw mode (output
/// processing kept) while we proxy (restored when dropped) and gives the container its window size. Unlike
/// runc, a caller without any terminal is fine: there is just nothing to set.
struct HostConsole {
    fd: Option<RawFd>,
    _opened: Option<OwnedFd>,
    saved: Option<Termios>,
}

impl HostConsole {
    fn enter() -> HostConsole {
        let (fd, opened) = match [2, 1, 0].into_iter().find(|&fd| {
            // SAFETY: isatty only queries the fd.
            unsafe { libc::isatty(fd) == 1 }
        }) {
            Some(fd) => (Some(fd), None),
            None => match std::fs::File::open("/dev/tty") {
                Ok(f) => {
                    let owned = OwnedFd::from(f);
                    (Some(owned.as_raw_fd()), Some(owned))
                }
                Err(_) => (None, None),
            },
        };
        let saved = fd.and_then(|fd| {
            // SAFETY: fd stays open for as long as this value lives.
            let tty = unsafe { BorrowedFd::borrow_raw(fd) };
            let saved = tcgetattr(tty).ok()?;
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            // As runc: output processing stays on, so the "\n" the container's pty now
            // passes through becomes "\r\n" on the caller's terminal.
            raw.output_flags.insert(OutputFlags::OPOST);
            let _ = tcsetattr(tty, SetArg::TCSANOW, &raw);
            Some(saved)
        });
        HostConsole {
            fd,
            _opened: opened,
            saved,
        }
    }

    fn copy_window_size_to(&self, master: BorrowedFd<'_>) {
        let Some(fd) = self.fd else {
            return;
        };
        // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize struct.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
}

impl Drop for HostConsole {
    fn drop(&mut self) {
        if let (Some(fd), Some(t)) = (self.fd, &self.saved) {
            // SAFETY: fd is still open (closed only after this, with _opened).
            let _ = tcsetattr(unsafe { BorrowedFd::borrow_raw(fd) }, SetArg::TCSANOW, t);
        }
    }
}

extern "C" fn on_winch(_: libc::c_int) {
    RESIZED.store(true, Ordering::SeqCst);
}

/// Copies stdin → master and master → stdout until the container's init exits;
/// returns its exit code.
pub fn proxy(master: OwnedFd, pid: i32) -> Result<i32> {
    let host = HostConsole::enter();
    // SAFETY: installing an async-signal-safe handler.
    unsafe { libc::signal(libc::SIGWINCH, on_winch as *const () as libc::sighandler_t) };
    host.copy_window_size_to(master.as_fd());
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        if RESIZED.swap(false, Ordering::SeqCst) {
            host.copy_window_size_to(master.as_fd());
        }
        let mut fds = [
            libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on a valid array; the timeout lets us notice init's exit.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 100) };
        if n > 0 && fds[0].revents != 0 && !copy(master.as_raw_fd(), 1, &mut buf) {
            break;
        }
        if n > 0 && fds[1].revents != 0 && !copy(0, master.as_raw_fd(), &mut buf) {
            stdin_open = false;
        }
        if let Some(code) = exited(pid) {
            // Drain what the program wrote just before it exited.
            while copy(master.as_raw_fd(), 1, &mut buf) && has_input(master.as_raw_fd()) {}
            return Ok(code);
        }
    }
    crate::process::wait_exit_code(pid)
}

fn has_input(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd with no wait.
    unsafe { libc::poll(&mut p, 1, 0) > 0 && p.revents & libc::POLLIN != 0 }
}

/// One read and a full write; false on EOF or error (EIO once the slave is closed).
fn copy(from: RawFd, to: RawFd, buf: &mut [u8]) -> bool {
    // SAFETY: read into and write from a live buffer.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    let mut off = 0;
    while off < n as usize {
        // SAFETY: writing the unwritten tail of the buffer.
        let w = unsafe { libc::write(to, buf[off..].as_ptr().cast(), n as usize - off) };
        if w <= 0 {
            return false;
        }
        off += w as usize;
    }
    true
}

/// The exit code if our child `pid` has exited, without blocking.
fn exited(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: non-blocking wait on our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then(|| {
        if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        }
    })
}
