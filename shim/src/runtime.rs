//! Drives the paddock CLI the way containerd's runc shim drives runc: global flags
//! `--root <root>/<ns> --log <bundle>/log.json --log-format json [--systemd-cgroup]`, one call per
//! task operation. The CLI's exit is collected through the crate's exit monitor (the shim is
//! the subreaper and its reaper thread owns waitpid), never by a second wait.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};
use containerd_shim::monitor::{monitor_subscribe, wait_pid, Topic};

use crate::options::RuntimeOptions;

#[derive(Debug, Clone)]
pub struct Runtime {
    binary: PathBuf,
    root: PathBuf,
    log: PathBuf,
    systemd: bool,
    debug: bool,
}

/// The container's side of stdio for `create`/`exec`: None = /dev/null.
pub type ChildStdio = [Option<OwnedFd>; 3];

impl Runtime {
    pub fn new(opts: &RuntimeOptions, namespace: &str, bundle: &Path) -> Result<Self> {
        Ok(Self {
            binary: opts.binary_path()?,
            root: opts.state_root(namespace),
            log: bundle.join("log.json"),
            systemd: opts.systemd_cgroup,
            debug: matches!(opts.log_level.as_str(), "debug" | "trace"),
        })
    }

    fn command(&self, systemd: bool) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd.arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        if systemd && self.systemd {
            cmd.arg("--systemd-cgroup");
        }
        if self.debug {
            cmd.arg("--debug");
        }
        cmd.env_remove("NOTIFY_SOCKET");
        cmd
    }

    /// Run a subcommand whose stdout+stderr are captured (one pipe), optionally feeding stdin.
    /// Returns the output on exit 0.
    pub fn call<S: AsRef<OsStr>>(&self, args: &[S], input: Option<&[u8]>) -> Result<String> {
        self.call_with(true, args, input)
    }

    /// As `call`, without `--systemd-cgroup` (the binary `delete`, like containerd's runc shim).
    pub fn call_plain<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        self.call_with(false, args, None)
    }

    fn call_with<S: AsRef<OsStr>>(
        &self,
        systemd: bool,
        args: &[S],
        input: Option<&[u8]>,
    ) -> Result<String> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let mut cmd = self.command(systemd);
        cmd.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::from(w.try_clone().context("dup pipe")?))
            .stderr(Stdio::from(w));
        let (code, out) = self.spawn_wait(cmd, input, Some(r))?;
        self.check(args, code, &out)?;
        Ok(out)
    }

    /// Run a subcommand whose stdio belong to the container (create, exec).
    pub fn call_stdio<S: AsRef<OsStr>>(&self, args: &[S], stdio: ChildStdio) -> Result<()> {
        let mut cmd = self.command(true);
        let [i, o, e] = stdio;
        let io = |fd: Option<OwnedFd>| fd.map_or_else(Stdio::null, Stdio::from);
        cmd.args(args).stdin(io(i)).stdout(io(o)).stderr(io(e));
        let (code, out) = self.spawn_wait(cmd, None, None)?;
        self.check(args, code, &out)
    }

    fn spawn_wait(
        &self,
        mut cmd: Command,
        input: Option<&[u8]>,
        output: Option<OwnedFd>,
    ) -> Result<(i32, String)> {
        // Subscribed before the spawn: the reaper may see the exit before spawn() returns.
        let exits =
            monitor_subscribe(Topic::Pid).map_err(|e| anyhow!("subscribe to exits: {e}"))?;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("run {}", self.binary.display()))?;
        drop(cmd); // closes our copies of the pipe write ends before reading
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            // A runtime that exits early closes the pipe; its exit status tells what happened.
            let _ = stdin.write_all(data);
        }
        let mut out = String::new();
        if let Some(r) = output {
            let mut f = std::fs::File::from(r);
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            out = String::from_utf8_lossy(&buf).into_owned();
        }
        let pid = i32::try_from(child.id()).context("child pid")?;
        Ok((wait_pid(pid, exits), out))
    }

    fn check<S: AsRef<OsStr>>(&self, args: &[S], code: i32, out: &str) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        let verb = args
            .first()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .unwrap_or_default();
        // paddock's own message (last error line of its JSON log), as containerd's runc shim
        // reports it; without one, the exit status and output.
        match last_error(&self.log) {
            Some(msg) => Err(anyhow!(msg)),
            None => Err(anyhow!("{verb}: exit status {code}: {}", out.trim())),
        }
    }
}

/// The `msg` of the last `"level":"error"` line of a JSON log.
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v.get("level")?.as_str()? == "error")
            .then(|| v.get("msg")?.as_str().map(str::to_string))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_line() {
        let d = std::env::temp_dir().join(format!("shim-log-{}", std::process::id()));
        std::fs::write(
            &d,
            "{\"level\":\"error\",\"msg\":\"old\",\"time\":\"t\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"/x\\\": no such file\",\"time\":\"t\"}\n{\"level\":\"warning\",\"msg\":\"w\",\"time\":\"t\"}\nnot json\n",
        )
        .unwrap();
        assert_eq!(
            last_error(&d).as_deref(),
            Some("exec: \"/x\": no such file")
        );
        std::fs::remove_file(&d).unwrap();
    }
}
