//! Hands the seccomp notify listener fd to the agent at `linux.seccomp.listenerPath`:
//! one connection, one container process state (runtime-spec config-linux.md), the fd in
//! SCM_RIGHTS on the first message, then the connection is closed.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::{json, Value};

/// Sends the process state with `fd` as "seccompFd" over a stream connected to the
/// agent at listenerPath (connected before pivot_root or setns, while the host path
/// is reachable). `state_json` is the container's OCI state. The caller closes it.
pub fn send_notify_fd_over(
    stream: &UnixStream,
    metadata: &str,
    state_json: &str,
    fd: BorrowedFd<'_>,
) -> Result<()> {
    let msg = process_state(metadata, state_json)?;
    send_all(stream, msg.as_bytes(), fd)
}

/// The OCI container process state for one seccomp listener fd.
pub(super) fn process_state(metadata: &str, state_json: &str) -> Result<String> {
    let state: Value = serde_json::from_str(state_json).context("container state: invalid json")?;
    let pid = state
        .get("pid")
        .and_then(Value::as_i64)
        .context("container state: no pid")?;
    let version = state
        .get("ociVersion")
        .and_then(Value::as_str)
        .unwrap_or("1.3.0")
        .to_string();
    let mut v = json!({
        "ociVersion": version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if !metadata.is_empty() {
        v["metadata"] = Value::from(metadata);
    }
    Ok(v.to_string())
}

/// Sends all of `data`, with `fd` attached to the first sendmsg only (as the spec asks).
fn send_all(stream: &UnixStream, data: &[u8], fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let mut sent = 0;
    let mut first = true;
    while sent < data.len() || first {
        let iov = [IoSlice::new(&data[sent..])];
        let cmsgs = [ControlMessage::ScmRights(&fds)];
        let cm: &[ControlMessage] = if first { &cmsgs } else { &[] };
        match sendmsg::<()>(stream.as_raw_fd(), &iov, cm, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => {
                sent += n;
                first = false;
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("send the seccomp fd"),
        }
    }
    Ok(())
}
