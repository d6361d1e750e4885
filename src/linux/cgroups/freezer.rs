//! Pause and resume: the v1 freezer (freezer.state FROZEN / THAWED) where it is
//! mounted, else v2 cgroup.freeze with cgroup.events "frozen 1".

use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{read_kernel_text, Cgroup};

/// How long freezing may take before it is undone and reported.
const FREEZE_WAIT: Duration = Duration::from_secs(10);

enum Freezer<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

fn freezer(cg: &Cgroup) -> Option<Freezer<'_>> {
    if let Some(d) = cg.v1_dir("freezer") {
        return Some(Freezer::V1(d));
    }
    cg.v2_dir()
        .filter(|d| d.join("cgroup.freeze").exists())
        .map(Freezer::V2)
}

pub fn is_frozen(cg: &Cgroup) -> bool {
    match freezer(cg) {
        Some(Freezer::V1(d)) => read_kernel_text(d.join("freezer.state"))
            .is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING")),
        Some(Freezer::V2(d)) => {
            read_kernel_text(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        }
        None => false,
    }
}

/// On v2, the nearest level of `rel` that exists below `mount` when a frozen
/// ancestor freezes it (cgroup.events "frozen 1"): a process joining it would
/// stop at once, and create would wait on it for ever.
pub fn frozen_ancestor(mount: &Path, rel: &Path) -> Option<std::path::PathBuf> {
    rel.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .map(|a| mount.join(a))
        .find(|d| d.is_dir())
        .filter(|d| {
            fs::read_to_string(d.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
        })
}

/// Freezes every process and waits until the kernel says they all are.
pub fn freeze(cg: &Cgroup) -> Result<()> {
    let deadline = Instant::now() + FREEZE_WAIT;
    match freezer(cg)
        .context("pause: the container has no freezer cgroup (v1 freezer or v2 cgroup.freeze; a rootless container without a delegated cgroup has none)")?
    {
        Freezer::V1(d) => {
            let state = d.join("freezer.state");
            loop {
                write(&state, "FROZEN")?;
                if read(&state)? == "FROZEN" {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = write(&state, "THAWED");
                    bail!("pause: {} did not reach FROZEN", state.display());
                }
                sleep(Duration::from_millis(1));
            }
        }
        Freezer::V2(d) => {
            write(&d.join("cgroup.freeze"), "1")?;
            let events = d.join("cgroup.events");
            loop {
                if read(&events)?.lines().any(|l| l.trim() == "frozen 1") {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = write(&d.join("cgroup.freeze"), "0");
                    bail!("pause: {} did not report frozen 1", events.display());
                }
                sleep(Duration::from_millis(1));
            }
        }
    }
}

pub fn thaw(cg: &Cgroup) -> Result<()> {
    match freezer(cg) {
        Some(Freezer::V1(d)) => write(&d.join("freezer.state"), "THAWED"),
        Some(Freezer::V2(d)) => write(&d.join("cgroup.freeze"), "0"),
        None => bail!("resume: the container has no freezer cgroup"),
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).with_context(|| format!("write {value} to {}", path.display()))
}

fn read(path: &Path) -> Result<String> {
    Ok(fs::read_to_string(path)
        .with_context(|| format!("read {}", path.display()))?
        .trim()
        .to_string())
}
