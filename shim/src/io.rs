//! Process stdio. Without a terminal, the container gets OS pipes and the shim copies them
//! to and from the FIFOs containerd's client made; it also holds a write handle on the stdin
//! FIFO so the copy does not see EOF before the client's CloseIO. With a terminal, the pty
//! master arrives on a console socket (console.rs) and is copied the same way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::console::ConsoleSocket;
use crate::runtime::ChildStdio;

#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The running copies of one process.
#[derive(Default)]
pub struct ProcessIo {
    /// The shim's own writer on the stdin FIFO; dropped by CloseIO.
    stdin_hold: Option<File>,
    /// The pty master, for ResizePty.
    console: Option<File>,
    /// The output copies still running.
    drain: Arc<Drain>,
}

/// Counts a process's output copies still running, so that its exit can be reported
/// only once its output has reached the FIFOs.
#[derive(Default)]
pub struct Drain {
    left: Mutex<usize>,
    idle: Condvar,
}

/// Held by one running copy; the count goes down when it is dropped.
struct Copying(Arc<Drain>);

impl Drain {
    fn start(self: &Arc<Self>) -> Copying {
        *self.left.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Copying(self.clone())
    }

    /// Waits until every copy has finished, or `limit` has passed.
    pub fn wait(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        while *left > 0 {
            let rest = deadline.saturating_duration_since(Instant::now());
            if rest.is_zero() {
                return;
            }
            left = match self.idle.wait_timeout(left, rest) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl Drop for Copying {
    fn drop(&mut self) {
        let mut left = self.0.left.lock().unwrap_or_else(|e| e.into_inner());
        *left = left.saturating_sub(1);
        self.0.idle.notify_all();
    }
}

/// What `create`/`exec` needs before the CLI runs, turned into ProcessIo after it succeeded.
pub struct Prepared {
    pub child: ChildStdio,
    pub console: Option<ConsoleSocket>,
    io: ProcessIo,
    stdin: Option<File>,
}

impl StdioPaths {
    pub fn prepare(&self) -> Result<Prepared> {
        let mut p = Prepared {
            child: [None, None, None],
            console: None,
            io: ProcessIo::default(),
            stdin: None,
        };
        if !self.stdin.is_empty() {
            let (read, hold) = open_stdin(&self.stdin)?;
            p.stdin = Some(read);
            p.io.stdin_hold = Some(hold);
        }
        if self.terminal {
            p.console = Some(ConsoleSocket::new()?);
            return Ok(p);
        }
        if let Some(read) = p.stdin.take() {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("stdin pipe")?;
            p.child[0] = Some(r);
            copy_thread(read, File::from(w), None);
        }
        for (slot, path) in [(1, &self.stdout), (2, &self.stderr)] {
            if path.is_empty() {
                continue;
            }
            let fifo = open_output(path)?;
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("output pipe")?;
            p.child[slot] = Some(w);
            copy_thread(File::from(r), fifo, Some(p.io.drain.start()));
        }
        Ok(p)
    }
}

impl Prepared {
    /// After the CLI succeeded: take the pty master from the console socket (tty case) and
    /// start copying it.
    pub fn finish(mut self, paths: &StdioPaths) -> Result<ProcessIo> {
        if let Some(sock) = self.console.take() {
            let master = sock.receive_master()?;
            if let Some(read) = self.stdin.take() {
                copy_thread(read, master.try_clone().context("dup pty master")?, None);
            }
            if !paths.stdout.is_empty() {
                let fifo = open_output(&paths.stdout)?;
                copy_thread(
                    master.try_clone().context("dup pty master")?,
                    fifo,
                    Some(self.io.drain.start()),
                );
            }
            self.io.console = Some(master);
        }
        Ok(self.io)
    }
}

impl ProcessIo {
    pub fn close_stdin(&mut self) {
        self.stdin_hold = None;
    }

    pub fn console(&self) -> Option<&File> {
        self.console.as_ref()
    }

    pub fn drain(&self) -> Arc<Drain> {
        self.drain.clone()
    }

    /// Wait (bounded) until the output copies have drained, then release everything.
    /// A process that left a child holding its stdout open does not hold Delete forever.
    pub fn finish(mut self, limit: Duration) {
        self.stdin_hold = None;
        self.drain.wait(limit);
    }
}

/// Read end (blocking) and the shim's own write end of the stdin FIFO. The read end is opened
/// non-blocking first so that it does not wait for a writer, then made blocking.
fn open_stdin(path: &str) -> Result<(File, File)> {
    let read = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open stdin fifo {path}"))?;
    let hold = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open stdin fifo {path} for writing"))?;
    set_blocking(&read)?;
    Ok((read, hold))
}

/// An output FIFO (the client has its read side open already) or a plain file path.
fn open_output(path: &str) -> Result<File> {
    let path = path.strip_prefix("file://").unwrap_or(path);
    anyhow::ensure!(!path.contains("://"), "unsupported stdio URI {path}");
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open output {path}"))
}

fn set_blocking(f: &File) -> Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on an fd we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    anyhow::ensure!(
        flags >= 0,
        "fcntl F_GETFL: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) };
    anyhow::ensure!(
        rc >= 0,
        "fcntl F_SETFL: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Copy until EOF or an error on either side (a closed reader ends the copy; a pty master
/// reads EIO once the last slave is closed). `done` is dropped at the end.
fn copy_thread(mut from: File, mut to: File, done: Option<Copying>) {
    let spawned = std::thread::Builder::new()
        .name("io".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _done = done;
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        });
    if let Err(e) = spawned {
        containerd_shim::error!("start io copy: {e}");
    }
}
