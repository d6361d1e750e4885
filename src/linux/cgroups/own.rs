//! The cgroup a process sits in, per v1 hierarchy (/proc/self/cgroup), and
//! whether init has a cgroup namespace of its own: what the container's view
//! of /sys/fs/cgroup is built from.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};

use super::Hierarchy;

/// The runtime's own cgroup namespace, recorded with the hierarchies before
/// clone, so that init can tell whether it has unshared or joined another.
static RUNTIME_NS: OnceLock<Option<u64>> = OnceLock::new();

fn ns_inode() -> Option<u64> {
    fs::metadata("/proc/self/ns/cgroup").ok().map(|m| m.ino())
}

/// Called on the runtime's side (before clone) by `hierarchies()`.
pub(super) fn record_runtime_ns() {
    RUNTIME_NS.get_or_init(ns_inode);
}

/// Whether this process is in another cgroup namespace than the runtime was.
pub fn in_other_cgroup_ns() -> bool {
    matches!((RUNTIME_NS.get(), ns_inode()), (Some(Some(a)), Some(b)) if *a != b)
}

/// The directory of this process's cgroup in `h`, on the host: the hierarchy's
/// mount point joined with the path /proc/self/cgroup gives for it. Init asks
/// once per v1 hierarchy, after it entered the container's cgroup.
pub fn own_dir(h: &Hierarchy) -> Result<PathBuf> {
    let text = own_cgroups()?;
    let rel = path_in(&text, h)
        .with_context(|| format!("/proc/self/cgroup has no line for {}", h.mount.display()))?;
    Ok(h.mount.join(rel.strip_prefix("/").unwrap_or(rel)))
}

/// /proc/self/cgroup, read once per process. The copy is tagged with the pid that
/// read it: init is a forked child, and a copy its parent read before the clone
/// would name the runtime's cgroups, not the container's (the runtime never asks
/// for its own, so even a runtime that is pid 1, like init in its new pid
/// namespace, leaves init nothing to mistake).
fn own_cgroups() -> Result<String> {
    static CACHE: Mutex<Option<(u32, String)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, text)) = cache.as_ref().filter(|(p, _)| *p == pid) {
        return Ok(text.clone());
    }
    let text = super::hierarchy::read_kernel_text("/proc/self/cgroup")
        .context("read /proc/self/cgroup")?;
    *cache = Some((pid, text.clone()));
    Ok(text)
}

/// The path of the line whose controllers are `h`'s ("4:cpu,cpuacct:/a/b").
fn path_in<'a>(text: &'a str, h: &Hierarchy) -> Option<&'a Path> {
    let want: HashSet<&str> = h.controllers.iter().map(String::as_str).collect();
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let have: HashSet<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
        (!want.is_empty() && have == want).then_some(Path::new(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hier(ctrls: &[&str]) -> Hierarchy {
        Hierarchy {
            mount: PathBuf::from("/sys/fs/cgroup/x"),
            controllers: ctrls.iter().map(|c| c.to_string()).collect(),
            v2: false,
            options: String::new(),
        }
    }

    #[test]
    fn finds_the_line_of_a_hierarchy() {
        let text = "12:cpu,cpuacct:/paddock/a\n1:name=systemd:/init.scope\n0::/u\n";
        assert_eq!(
            path_in(text, &hier(&["cpuacct", "cpu"])),
            Some(Path::new("/paddock/a"))
        );
        assert_eq!(
            path_in(text, &hier(&["name=systemd"])),
            Some(Path::new("/init.scope"))
        );
        assert_eq!(path_in(text, &hier(&["cpu"])), None);
        assert_eq!(path_in(text, &hier(&[])), None);
    }
}
