//! The container's cgroup with the cgroupfs driver: one directory per mounted
//! hierarchy (v1 controllers, the v2 unified mount, or a pure v2 tree). Resource
//! limits come with the cgroups issue; here the cgroup exists so that every
//! container process can be found (kill --all) and cleaned up (delete).

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Parent of containers whose config gives no cgroupsPath.
const DEFAULT_PARENT: &str = "paddock";

pub struct Cgroup {
    /// One directory per hierarchy; the first one with cgroup.procs is used to list pids.
    pub dirs: Vec<PathBuf>,
}

/// The cgroup path relative to each hierarchy root, from linux.cgroupsPath.
pub fn relative_path(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let p = match cgroups_path {
        None => return Ok(Path::new(DEFAULT_PARENT).join(id)),
        Some(p) => p,
    };
    if p.as_os_str().to_string_lossy().contains(':') {
        bail!("linux.cgroupsPath: systemd slice paths (slice:prefix:name) need the systemd cgroup driver, which is not supported yet");
    }
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            _ => bail!("linux.cgroupsPath: {} must not contain '..'", p.display()),
        }
    }
    if rel.as_os_str().is_empty() {
        bail!("linux.cgroupsPath: {} names the root cgroup", p.display());
    }
    Ok(rel)
}

/// Mount points of every cgroup hierarchy in this mount namespace.
pub fn hierarchies() -> Result<Vec<PathBuf>> {
    let info = fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mnt = pre.split_whitespace().nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mnt))
        })
        .collect())
}

impl Cgroup {
    /// Creates the cgroup in every hierarchy. v1 cpuset needs cpus/mems before tasks join.
    pub fn create(rel: &Path) -> Result<Cgroup> {
        let mut cg = Cgroup { dirs: Vec::new() };
        for h in hierarchies()? {
            let dir = h.join(rel);
            let result = fs::create_dir_all(&dir)
                .with_context(|| format!("create cgroup {}", dir.display()))
                .and_then(|()| init_cpuset(&h, rel));
            cg.dirs.push(dir);
            if let Err(e) = result {
                let _ = cg.remove();
                return Err(e);
            }
        }
        Ok(cg)
    }

    /// The cgroup of an existing container (directories that still exist).
    pub fn open(rel: &Path) -> Result<Cgroup> {
        let dirs = hierarchies()?
            .into_iter()
            .map(|h| h.join(rel))
            .filter(|d| d.is_dir())
            .collect();
        Ok(Cgroup { dirs })
    }

    pub fn add(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            let f = d.join("cgroup.procs");
            fs::write(&f, pid.to_string())
                .with_context(|| format!("join cgroup {}", f.display()))?;
        }
        Ok(())
    }

    /// Every process in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        self.dirs
            .iter()
            .find_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes the directories, retrying while exiting processes still hold them (EBUSY).
    pub fn remove(&self) -> Result<()> {
        for d in self.dirs.iter().rev() {
            remove_dir_retrying(d)?;
        }
        Ok(())
    }
}

fn remove_dir_retrying(dir: &Path) -> Result<()> {
    // Nested cgroups (e.g. made by a container with cgroupns) go first.
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dir_retrying(&e.path())?;
            }
        }
    }
    for attempt in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 199 => {
                sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(e).with_context(|| format!("remove cgroup {}", dir.display())),
        }
    }
    Ok(())
}

/// On a v1 cpuset hierarchy a new cgroup starts with empty cpus/mems; copy the parent's down.
fn init_cpuset(hierarchy: &Path, rel: &Path) -> Result<()> {
    if !hierarchy.join("cpuset.cpus").exists() || hierarchy.join("cgroup.controllers").exists() {
        return Ok(());
    }
    let mut cur = hierarchy.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = fs::read_to_string(cur.join(file)).unwrap_or_default();
            if own.trim().is_empty() {
                let value = fs::read_to_string(parent.join(file))
                    .with_context(|| format!("read {}", parent.join(file).display()))?;
                fs::write(cur.join(file), value.trim())
                    .with_context(|| format!("write {}", cur.join(file).display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_forms() {
        assert_eq!(relative_path(None, "c").unwrap(), Path::new("paddock/c"));
        assert_eq!(
            relative_path(Some(Path::new("/a/b")), "c").unwrap(),
            Path::new("a/b")
        );
        assert_eq!(
            relative_path(Some(Path::new("a/b")), "c").unwrap(),
            Path::new("a/b")
        );
        assert!(relative_path(Some(Path::new("/a/../b")), "c").is_err());
        assert!(relative_path(Some(Path::new("/")), "c").is_err());
        assert!(relative_path(Some(Path::new("system.slice:p:n")), "c").is_err());
    }
}
