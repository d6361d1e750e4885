//! `ps ID`: the container's processes. `--format json` prints only a JSON array
//! of pids (containerd parses it); `table` runs the host's `ps` (default -ef)
//! and keeps the header and the rows of the container's pids, like runc.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::Globals;
use crate::cli::{ListFormat, PsArgs};
use crate::linux::cgroups::Cgroup;
use crate::state::StateDir;

/// Where to look for ps when the caller's environment has no PATH (Podman).
const PS_PATHS: &[&str] = &["/bin/ps", "/usr/bin/ps", "/usr/local/bin/ps"];

pub fn ps(g: &Globals, args: &PsArgs) -> Result<()> {
    let c = StateDir::open(&g.root, &args.id)?.load()?;
    let pids = Cgroup::open(Path::new(&c.cgroup_path))?.pids();
    if args.format == ListFormat::Json {
        let json = serde_json::to_string(&pids).context("encode pids")?;
        crate::print_stdout(&format!("{json}\n"));
        return Ok(());
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let out = run_ps(&ps_args)?;
    crate::print_stdout(&filter_table(&out, &pids)?);
    Ok(())
}

fn run_ps(args: &[&str]) -> Result<String> {
    let prog = if std::env::var_os("PATH").is_some() {
        "ps"
    } else {
        PS_PATHS
            .iter()
            .copied()
            .find(|p| Path::new(p).exists())
            .unwrap_or("ps")
    };
    let mut cmd = Command::new(prog);
    cmd.args(args);
    // SAFETY: close_range is async-signal-safe; the host ps gets stdio only, not fds
    // our caller left open.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        })
    };
    let out = cmd
        .output()
        .with_context(|| format!("run ps {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The header line and the lines whose PID column is one of `pids`.
pub fn filter_table(out: &str, pids: &[i32]) -> Result<String> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .context("ps: no PID column in the output")?;
    let mut text = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p: i32| pids.contains(&p)) {
            text.push_str(l);
            text.push('\n');
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keeps_header_and_our_rows() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 9\n";
        assert_eq!(
            filter_table(out, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 9\n"
        );
        assert!(filter_table("USER X\n", &[1]).is_err());
    }
}
