//! A blocking connection to the system bus on this thread (no threads, no
//! async runtime: the runtime must be single-threaded when it clones init).
//! EXTERNAL authentication with our uid, Hello, then method calls; signals
//! that arrive while waiting for a reply are kept for `wait_signal`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::wire::{Message, Value, ERROR, METHOD_RETURN, SIGNAL};

pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// No answer from the bus within this long is an error, as a job that never ends is.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    sock: UnixStream,
    serial: u32,
    pending: VecDeque<Message>,
    buf: Vec<u8>,
}

/// An error reply: its D-Bus name and message.
#[derive(Debug)]
pub struct BusError {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for BusError {}

/// The socket of the system bus: DBUS_SYSTEM_BUS_ADDRESS (unix:path= only), as
/// D-Bus clients read it, or the standard path.
pub fn system_bus_path() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| {
            a.split(';')
                .find_map(|t| t.strip_prefix("unix:path=").map(|p| p.to_string()))
        })
        .map(|p| p.split(',').next().unwrap_or_default().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| SYSTEM_BUS.to_string())
}

impl Conn {
    /// Connects to the system bus and says Hello.
    pub fn system() -> Result<Conn> {
        let path = system_bus_path();
        let sock = UnixStream::connect(&path).with_context(|| {
            format!("connect to the d-bus system bus at {path} (is systemd running with dbus?)")
        })?;
        sock.set_read_timeout(Some(TIMEOUT))?;
        let mut c = Conn {
            sock,
            serial: 0,
            pending: VecDeque::new(),
            buf: Vec::new(),
        };
        c.auth()
            .with_context(|| format!("d-bus authentication on {path}"))?;
        c.call(Message::call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            vec![],
        ))?;
        Ok(c)
    }

    fn auth(&mut self) -> Result<()> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            bail!("the bus refused EXTERNAL authentication: {}", line.trim());
        }
        self.sock.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 || self.sock.read(&mut b)? == 0 {
                bail!("the bus closed the connection during authentication");
            }
            line.push(b[0]);
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends a method call and returns its reply's body; an error reply is a BusError.
    pub fn call(&mut self, mut m: Message) -> Result<Vec<Value>> {
        self.serial += 1;
        m.serial = self.serial;
        let what = format!("d-bus call {}.{}", m.interface, m.member);
        self.sock.write_all(&m.encode()).context(what.clone())?;
        loop {
            let r = self.read_message().context(what.clone())?;
            match r.kind {
                METHOD_RETURN if r.reply_serial == m.serial => return Ok(r.body),
                ERROR if r.reply_serial == m.serial => {
                    let message = r
                        .body
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    return Err(BusError {
                        name: r.error_name,
                        message,
                    }
                    .into());
                }
                SIGNAL => self.pending.push_back(r),
                _ => {}
            }
        }
    }

    /// The first signal (already received or still to come) that `accept` takes.
    pub fn wait_signal(&mut self, accept: &dyn Fn(&Message) -> bool) -> Result<Message> {
        if let Some(i) = self.pending.iter().position(accept) {
            if let Some(m) = self.pending.remove(i) {
                return Ok(m);
            }
        }
        loop {
            let m = self.read_message().context("wait for a d-bus signal")?;
            if m.kind == SIGNAL && accept(&m) {
                return Ok(m);
            }
        }
    }

    fn read_message(&mut self) -> Result<Message> {
        loop {
            if self.buf.len() >= 16 {
                let len = Message::total_len(&self.buf)?;
                if self.buf.len() >= len {
                    let m = Message::decode(&self.buf[..len]);
                    self.buf.drain(..len);
                    return m;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = match self.sock.read(&mut chunk) {
                Ok(0) => bail!("the bus closed the connection"),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    bail!("no answer from the bus in {} s", TIMEOUT.as_secs())
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
