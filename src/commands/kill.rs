use std::path::Path;

use anyhow::{bail, Result};

use super::Globals;
use crate::cli::KillArgs;
use crate::error::RuntimeError;
use crate::linux::cgroups::{freezer, Cgroup};
use crate::state::{Container, StateDir, Status};

/// As runc 1.5: the signal goes to init; SIGKILL of a container sharing the
/// host's pid namespace goes to every process of its cgroup (killing init does
/// not take the others with it there). With `--all` a stopped container is no
/// error, and the signal also reaches every process of the cgroup.
pub fn kill(g: &Globals, args: &KillArgs) -> Result<()> {
    let sig = parse_signal(&args.signal)?;
    let sd = StateDir::open(&g.root, &args.id)?;
    let c = sd.load()?;
    let result = if args.all || (sig == libc::SIGKILL && !c.private_pid_ns) {
        signal_cgroup(&c, sig)
    } else {
        signal_init(&c, sig)
    };
    match result {
        Err(e) if args.all && is_not_running(&e) => Ok(()),
        other => other,
    }
}

fn is_not_running(e: &anyhow::Error) -> bool {
    e.downcast_ref::<RuntimeError>() == Some(&RuntimeError::NotRunning)
}

fn signal_init(c: &Container, sig: i32) -> Result<()> {
    // A stopped container's pid may already belong to someone else.
    if c.status() == Status::Stopped {
        return Err(RuntimeError::NotRunning.into());
    }
    if let Err(e) = send(c.pid, sig) {
        if e == libc::ESRCH {
            return Err(RuntimeError::NotRunning.into());
        }
        bail!("unable to signal init: {}", strerror(e));
    }
    if sig == libc::SIGKILL {
        // A frozen (v1) process dies only once thawed.
        if let Ok(cg) = Cgroup::open(Path::new(&c.cgroup_path)) {
            if freezer::is_frozen(&cg) {
                let _ = freezer::thaw(&cg);
            }
        }
    }
    Ok(())
}

/// Every process of the cgroup, frozen while they are signalled so that none
/// forks past the list; thawed after so that SIGKILL takes effect.
fn signal_cgroup(c: &Container, sig: i32) -> Result<()> {
    let cg = Cgroup::open(Path::new(&c.cgroup_path))?;
    let pids = cg.pids();
    if pids.is_empty() {
        if c.status() == Status::Stopped {
            return Err(RuntimeError::NotRunning.into());
        }
        return signal_init(c, sig);
    }
    if sig == libc::SIGKILL && cg.kill_all() {
        return Ok(());
    }
    let was_frozen = freezer::is_frozen(&cg);
    let froze = !was_frozen && freezer::freeze(&cg).is_ok();
    for pid in cg.pids() {
        if let Err(e) = send(pid, sig) {
            if e != libc::ESRCH {
                if froze {
                    let _ = freezer::thaw(&cg);
                }
                bail!("unable to signal process {pid}: {}", strerror(e));
            }
        }
    }
    if froze || (was_frozen && sig == libc::SIGKILL) {
        let _ = freezer::thaw(&cg);
    }
    Ok(())
}

/// "invalid argument", as Go spells errno texts.
fn strerror(e: i32) -> String {
    let desc = nix::errno::Errno::from_raw(e).desc();
    let mut chars = desc.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// kill(2); the errno on failure.
fn send(pid: i32, sig: i32) -> std::result::Result<(), i32> {
    if pid <= 0 {
        return Err(libc::ESRCH);
    }
    // SAFETY: kill with a checked pid (> 0); the kernel checks the signal number.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    }
}

/// `KILL`, `SIGKILL`, `kill` and `9` all mean SIGKILL. Any number is taken as
/// runc takes it (0 checks liveness; the kernel refuses numbers out of range).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
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
        _ => return rt_signal(name).ok_or_else(|| anyhow::anyhow!("unknown signal {s:?}")),
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
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert_eq!(parse_signal("65").unwrap(), 65);
    }
}
