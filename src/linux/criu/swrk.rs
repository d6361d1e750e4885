//! One conversation with `criu swrk`: CRIU as a child that reads requests and
//! answers on a SOCK_SEQPACKET socketpair (fd 3 on its side), sending NOTIFY
//! messages for the hook points paddock acts on before the final answer.

use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, send, shutdown, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, Shutdown,
    SockFlag, SockType,
};

use super::rpc::{ReqType, Request, Response};

/// Large enough for any answer CRIU sends (runc uses the same size).
const RECV_BUF: usize = 10 * 4096;
/// Fds handed to criu are parked above this before they are moved to 3, 4, ...
const PARK_FD: RawFd = 100;

/// How criu's own stdio is set up.
pub enum CriuStdio {
    /// /dev/null, with stderr kept in a pipe so a failure can say what CRIU said.
    Quiet,
    /// Ours: a restored process's inherited pipes are criu's stdio (see descriptors.json).
    Inherit,
}

pub struct Swrk {
    child: Child,
    sock: OwnedFd,
    stderr: Option<File>,
    /// CRIU's own message when it answered a failure with one.
    pub errmsg: Option<String>,
}

/// What a notification handler gets: the script name, the pid CRIU names, and an
/// fd CRIU passed with it (the orphaned pty master).
pub type Notify<'a> = dyn FnMut(&str, i32, Option<OwnedFd>) -> Result<()> + 'a;

impl Swrk {
    /// Starts `criu swrk 3`; `extra` fds become criu's fds 4, 5, ... in order.
    pub fn start(stdio: CriuStdio, extra: &[BorrowedFd<'_>]) -> Result<Swrk> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("criu socketpair")?;
        // Parked above the targets, so moving one into place never overwrites another.
        let mut parked = vec![park(theirs.as_raw_fd())?];
        for fd in extra {
            parked.push(park(fd.as_raw_fd())?);
        }
        drop(theirs);
        let targets: Vec<(RawFd, RawFd)> = parked
            .iter()
            .enumerate()
            .map(|(i, fd)| (fd.as_raw_fd(), 3 + i as RawFd))
            .collect();
        let mut cmd = Command::new("criu");
        cmd.args(["swrk", "3"]);
        match stdio {
            CriuStdio::Quiet => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
            }
            CriuStdio::Inherit => {}
        }
        // SAFETY: only dup2 (async-signal-safe) runs between fork and exec; dup2
        // leaves the copy without FD_CLOEXEC, so criu inherits exactly these.
        unsafe {
            cmd.pre_exec(move || {
                for &(from, to) in &targets {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("start criu swrk")?;
        let stderr = child.stderr.take().map(|e| File::from(OwnedFd::from(e)));
        Ok(Swrk {
            child,
            sock: ours,
            stderr,
            errmsg: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `req` and reads answers, passing notifications to `notify`, until the
    /// answer to `req` itself. A failure says what CRIU said, in one line.
    pub fn call(
        &mut self,
        req: &Request<'_>,
        kind: ReqType,
        notify: &mut Notify<'_>,
    ) -> Result<Response> {
        self.send(req)?;
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let (n, fd) = self.recv(&mut buf)?;
            if n == 0 {
                bail!("criu failed: unexpected EOF{}", self.reason_suffix());
            }
            if n == buf.len() {
                bail!("criu failed: answer too large");
            }
            let resp = Response::decode(&buf[..n])?;
            let t = resp.kind.map_or("unknown", ReqType::name);
            if !resp.success {
                self.errmsg = resp.cr_errmsg.as_deref().and_then(last_error_line);
                bail!("criu failed: type {t} errno {}", resp.cr_errno);
            }
            match resp.kind {
                Some(ReqType::Notify) => {
                    let (script, pid) = resp.notify.clone().unwrap_or_default();
                    crate::logger::debug(&format!("criu notify: {script} (pid {pid})"));
                    notify(&script, pid, fd)?;
                    self.send(&Request::NotifyDone)?;
                }
                Some(k) if k == kind => return Ok(resp),
                _ => bail!("criu failed: unexpected answer type {t}"),
            }
        }
    }

    /// Ends the conversation and waits for criu; for `kind`s other than PRE_DUMP a
    /// failed exit is an error, as in runc.
    pub fn finish(mut self, kind: ReqType) -> Result<()> {
        let _ = shutdown(self.sock.as_raw_fd(), Shutdown::Write);
        let status = self.child.wait().context("wait for criu")?;
        if !status.success() && kind != ReqType::PreDump {
            bail!("criu failed: {status}{}", self.reason_suffix());
        }
        Ok(())
    }

    fn send(&mut self, req: &Request<'_>) -> Result<()> {
        let data = req.encode();
        let n = loop {
            match send(self.sock.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        match n {
            Ok(n) if n == data.len() => Ok(()),
            Ok(_) => bail!("criu: short write of a request"),
            Err(e) => Err(e).context(format!("send request to criu{}", self.reason_suffix())),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = loop {
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        }
        .context("read criu's answer")?;
        let mut fd = None;
        for c in msg.cmsgs().context("criu's control message")? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the kernel just installed this fd for us; we own it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    fd.get_or_insert(owned);
                }
            }
        }
        Ok((msg.bytes, fd))
    }

    /// ": <CRIU's last error line>" from its stderr, when it exited and said something.
    fn reason_suffix(&mut self) -> String {
        let Some(mut err) = self.stderr.take() else {
            return String::new();
        };
        // criu has exited (EOF on the socket) or is about to: stderr ends soon.
        let _ = shutdown(self.sock.as_raw_fd(), Shutdown::Both);
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        last_error_line(&text)
            .map(|l| format!(": {l}"))
            .unwrap_or_default()
    }
}

impl Drop for Swrk {
    /// An abandoned conversation: criu sees EOF and exits; it is always reaped.
    fn drop(&mut self) {
        let _ = shutdown(self.sock.as_raw_fd(), Shutdown::Both);
        let _ = self.child.wait();
    }
}

fn park(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC makes a new fd that we then own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, PARK_FD) };
    if new < 0 {
        return Err(std::io::Error::last_os_error()).context("duplicate an fd for criu");
    }
    // SAFETY: `new` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The last line of CRIU's output that reports an error (not the closing "Dumping
/// FAILED."), without its source position.
pub fn last_error_line(text: &str) -> Option<String> {
    let line = text
        .lines()
        .rev()
        .filter(|l| !l.trim_end().ends_with("FAILED."))
        .find(|l| l.contains("Error") || l.contains("error"))
        .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()))?;
    // "Error (criu/kerndat.c:1615): what went wrong" -> "what went wrong"
    let msg = match line.find("): ") {
        Some(i) if line[..i].contains("Error (") => &line[i + 3..],
        _ => line,
    };
    Some(msg.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_error_lines_lose_their_source_position() {
        let log = "(00.001) info\n(00.002) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.\n(00.003) done\n";
        assert_eq!(
            last_error_line(log).as_deref(),
            Some("kerndat_vdso_fill_symtable failed when initializing kerndat.")
        );
        assert_eq!(last_error_line("\n"), None);
        assert_eq!(
            last_error_line("Error (criu/files-reg.c:1710): Can't lookup mount=24\n").as_deref(),
            Some("Can't lookup mount=24")
        );
    }
}
