//! sd_notify passthrough, as runc does it. When our caller (systemd) gives us
//! NOTIFY_SOCKET, the container gets a socket of its own: `create` makes
//! `<state dir>/notify/`, bound read-only at /run/notify with NOTIFY_SOCKET
//! pointing at /run/notify/notify.sock; `start` (or `run`) binds the socket there,
//! releases init, and waits for the container's READY=, which it passes on with
//! MAINPID= set to the container's init, then waits for the caller's barrier.

use std::ffi::OsString;
use std::fs::{self, DirBuilder};
use std::io::{ErrorKind, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::{MountBuilder, Spec};

use crate::linux::pidfd;

const SOCKET_DIR: &str = "notify";
const SOCKET_NAME: &str = "notify.sock";
const DIR_IN_CONTAINER: &str = "/run/notify";
/// As runc: a caller that never closes the barrier fd is given up on with a warning.
const BARRIER_WAIT: Duration = Duration::from_secs(30);

/// The caller's notify socket, when NOTIFY_SOCKET is set and not empty.
fn host_socket() -> Option<OsString> {
    std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())
}

fn socket_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_DIR)
}

/// At create, with NOTIFY_SOCKET set: makes the socket's directory in the state dir
/// and adds its bind mount to the container's config.
pub fn prepare_container(spec: &mut Spec, state_dir: &Path) -> Result<()> {
    if host_socket().is_none() {
        return Ok(());
    }
    let dir = std::path::absolute(socket_dir(state_dir)).context("notify socket directory")?;
    DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("create notify socket directory {}", dir.display()))?;
    add_mount(spec, &dir)
}

/// The bind mount of `dir`, read-only as in runc.
fn add_mount(spec: &mut Spec, dir: &Path) -> Result<()> {
    let mount = MountBuilder::default()
        .destination(DIR_IN_CONTAINER)
        .source(dir)
        .options(
            ["bind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .context("notify socket mount")?;
    spec.mounts_mut().get_or_insert_with(Vec::new).push(mount);
    Ok(())
}

/// With NOTIFY_SOCKET set, points the container's process at its socket. Only init
/// gets it: called after the config is saved, as exec's processes start from the
/// saved process, and runc's from the bundle's config.json, which does not have it.
pub fn pass_env(spec: &mut Spec) -> Result<()> {
    match host_socket() {
        Some(_) => add_env(spec),
        None => Ok(()),
    }
}

fn add_env(spec: &mut Spec) -> Result<()> {
    let process = spec
        .process_mut()
        .as_mut()
        .context("process: required to pass the notify socket on")?;
    let mut env = process.env().clone().unwrap_or_default();
    env.push(format!("NOTIFY_SOCKET={DIR_IN_CONTAINER}/{SOCKET_NAME}"));
    process.set_env(Some(env));
    Ok(())
}

/// The container's end, bound before init is released so no message is lost.
pub struct NotifySocket {
    sock: UnixDatagram,
    host: OsString,
}

impl NotifySocket {
    /// With NOTIFY_SOCKET set, binds `<state dir>/notify/notify.sock`, mode 0777 so
    /// that any user in the container can send to it.
    pub fn bind(state_dir: &Path) -> Result<Option<NotifySocket>> {
        let Some(host) = host_socket() else {
            return Ok(None);
        };
        let path = socket_dir(state_dir).join(SOCKET_NAME);
        let sock = UnixDatagram::bind(&path)
            .with_context(|| format!("bind notify socket {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777))
            .with_context(|| format!("chmod notify socket {}", path.display()))?;
        sock.set_nonblocking(true)
            .context("notify socket: set non-blocking")?;
        Ok(Some(NotifySocket { sock, host }))
    }

    /// Waits for the container's READY= while its init (`pid`, started at
    /// `start_time`) lives, and passes it on. Other messages are dropped, as runc does.
    pub fn forward_ready(&self, pid: i32, start_time: u64) -> Result<()> {
        let client = connect_host(&self.host)?;
        let mut buf = [0u8; 4096];
        let pidfd = match pidfd::open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                return self.forward_queued(&client, &mut buf, pid)
            }
            Err(e) => return Err(e).context("notify socket: pidfd_open of container init"),
        };
        // The pidfd is open: make sure it is init's and not a process that reused its pid.
        if !crate::state::is_alive(pid, start_time) {
            return self.forward_queued(&client, &mut buf, pid);
        }
        loop {
            let (msg, exited) = poll_two(self.sock.as_fd(), pidfd.as_fd(), None)?;
            if msg {
                if let Some(n) = self.receive(&mut buf)? {
                    if let Some(line) = ready_line(&buf[..n]) {
                        return notify_host(&client, line, pid);
                    }
                }
            } else if exited {
                return self.forward_queued(&client, &mut buf, pid);
            }
        }
    }

    /// After init is gone: a READY= it sent just before exiting is still queued on the
    /// socket and is passed on, as runc's reader would.
    fn forward_queued(&self, client: &UnixDatagram, buf: &mut [u8], pid: i32) -> Result<()> {
        while let Some(n) = self.receive(buf)? {
            if let Some(line) = ready_line(&buf[..n]) {
                return notify_host(client, line, pid);
            }
        }
        Ok(())
    }

    /// One datagram's length, or None when none is queued (the socket is non-blocking).
    fn receive(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        loop {
            match self.sock.recv(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e).context("notify socket: receive"),
            }
        }
    }
}

/// runc's reading of a datagram: one that starts with READY= is passed on up to
/// its first newline; any other is not a readiness notification.
fn ready_line(datagram: &[u8]) -> Option<&[u8]> {
    if !datagram.starts_with(b"READY=") {
        return None;
    }
    datagram.split(|b| *b == b'\n').next()
}

/// A datagram socket connected to the caller's; `@name` is in the abstract namespace.
fn connect_host(host: &OsString) -> Result<UnixDatagram> {
    let bytes = host.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(Path::new(host)),
    }
    .with_context(|| format!("NOTIFY_SOCKET: bad address {host:?}"))?;
    let client = UnixDatagram::unbound().context("notify socket: create client")?;
    client
        .connect_addr(&addr)
        .with_context(|| format!("NOTIFY_SOCKET: connect {}", host.to_string_lossy()))?;
    Ok(client)
}

/// READY= as the container sent it, MAINPID= of its init, then the sd_notify barrier.
fn notify_host(client: &UnixDatagram, ready: &[u8], pid: i32) -> Result<()> {
    let mut line = ready.to_vec();
    line.push(b'\n');
    client.send(&line).context("NOTIFY_SOCKET: send READY")?;
    client
        .send(format!("MAINPID={pid}\n").as_bytes())
        .context("NOTIFY_SOCKET: send MAINPID")?;
    barrier(client)
}

/// sd_notify_barrier: send BARRIER=1 with the write end of a pipe and wait until the
/// caller has closed it, so it has seen everything sent before.
fn barrier(client: &UnixDatagram) -> Result<()> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("barrier pipe")?;
    let msg = b"BARRIER=1";
    let iov = [IoSlice::new(msg)];
    let fds = [w.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(client.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    }
    .context("NOTIFY_SOCKET: send BARRIER")?;
    drop(w);
    let (readable, _) = poll_two(r.as_fd(), r.as_fd(), Some(BARRIER_WAIT))?;
    if !readable {
        crate::logger::warn("Timeout after waiting 30s for barrier. Ignored.");
        return Ok(());
    }
    let mut byte = [0u8; 1];
    match nix::unistd::read(r.as_raw_fd(), &mut byte) {
        Ok(0) => Ok(()),
        Ok(_) => bail!("unexpected read from synchronization pipe"),
        Err(e) => Err(e).context("barrier pipe: read"),
    }
}

/// Polls two fds for input (or hangup); returns which of them is ready. Retries
/// on EINTR (a forwarded signal). With a timeout, (false, false) means it passed.
fn poll_two(
    a: BorrowedFd<'_>,
    b: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> Result<(bool, bool)> {
    let ms = timeout.map_or(-1, |t| t.as_millis() as libc::c_int);
    let mut fds = [a, b].map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: poll on an array of two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n >= 0 {
            return Ok((fds[0].revents != 0, fds[1].revents != 0));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != ErrorKind::Interrupted {
            return Err(err).context("notify socket: poll");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_datagrams_are_passed_on_up_to_the_first_newline() {
        assert_eq!(ready_line(b"READY=1"), Some(&b"READY=1"[..]));
        assert_eq!(ready_line(b"READY=1\nSTATUS=up\n"), Some(&b"READY=1"[..]));
        assert_eq!(ready_line(b"STATUS=starting"), None);
        // As runc: READY= counts only at the start of the datagram.
        assert_eq!(ready_line(b"STATUS=x\nREADY=1"), None);
    }

    #[test]
    fn the_container_sees_the_socket_at_run_notify() {
        let dir = Path::new("/run/paddock/c1/notify");
        let mut spec = Spec::default();
        add_mount(&mut spec, dir).unwrap();
        let m = spec.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(m.destination(), Path::new("/run/notify"));
        assert_eq!(m.source().as_deref(), Some(dir));
        let opts = m.options().clone().unwrap();
        assert_eq!(opts, ["bind", "nosuid", "noexec", "nodev", "ro"]);
        add_env(&mut spec).unwrap();
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env.last().unwrap(), "NOTIFY_SOCKET=/run/notify/notify.sock");
    }
}
