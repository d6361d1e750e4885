use anyhow::{bail, Result};

use super::Globals;
use crate::cli::KillArgs;
use crate::error::RuntimeError;
use crate::linux::cgroups::Cgroup;
use crate::state::{StateDir, Status};

pub fn kill(g: &Globals, args: &KillArgs) -> Result<()> {
    let sig = parse_signal(&args.signal)?;
    let sd = StateDir::open(&g.root, &args.id)?;
    let c = sd.load()?;
    if c.status() == Status::Stopped {
        // With --all, stragglers of a shared pid namespace may still need the signal.
        if !args.all {
            return Err(RuntimeError::NotRunning.into());
        }
    }
    if args.all {
        let cg = Cgroup::open(std::path::Path::new(&c.cgroup_path))?;
        let pids = cg.pids();
        if pids.is_empty() && c.status() == Status::Stopped {
            return Err(RuntimeError::NotRunning.into());
        }
        // v2 cgroup.kill reaches processes forked while we signal; else one by one.
        if !(sig == libc::SIGKILL && cg.kill_all()) {
            for pid in pids {
                send(pid, sig);
            }
        }
        if sig == libc::SIGKILL {
            // Frozen (paused) processes die only once thawed.
            let _ = crate::linux::cgroups::freezer::thaw(&cg);
        }
        return Ok(());
    }
    if !send(c.pid, sig) {
        return Err(RuntimeError::NotRunning.into());
    }
    Ok(())
}

fn send(pid: i32, sig: i32) -> bool {
    // SAFETY: kill with a checked pid (> 0) and signal number.
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// `KILL`, `SIGKILL`, `kill` and `9` all mean SIGKILL.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("signal: invalid signal number {n}");
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return rt_signal(name).ok_or_else(|| anyhow::anyhow!("signal: unknown signal {s:?}")),
    };
    Ok(n)
}

/// RTMIN, RTMIN+n, RTMAX, RTMAX-n.
fn rt_signal(name: &str) -> Option<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        min + rest.strip_prefix('+').map_or(Some(0), |d| d.parse().ok())?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        max - rest.strip_prefix('-').map_or(Some(0), |d| d.parse().ok())?
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_spellings() {
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse_signal(s).unwrap(), libc::SIGKILL);
        }
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
    }
}
