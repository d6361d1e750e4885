//! The container's cgroup with the cgroupfs driver: one directory per mounted
//! hierarchy (v1 controllers, a hybrid host's v2 "unified" mount, or a pure v2
//! tree). Nothing is ever mounted on the host; the layout is read from mountinfo.
//!
//! resources.rs plans and applies linux.resources (v1.rs / v2.rs turn it into
//! file writes, devices.rs the device allow-list, devices_bpf.rs and bpf.rs
//! its v2 eBPF program), freezer.rs pauses,
//! stats.rs and oom.rs feed `events`, sub.rs places `exec --cgroup` processes,
//! own.rs tells init which cgroup it sits in (for the cgroup mount).
//! systemd.rs is the systemd driver: systemd makes the cgroup, the rest is shared.

pub mod bpf;
pub mod devices;
pub mod devices_bpf;
pub mod entry;
pub mod freezer;
pub mod hierarchy;
pub mod oom;
pub mod own;
pub mod resources;
pub mod stats;
pub mod sub;
pub mod systemd;
mod systemd_annotations;
mod systemd_props;
pub mod v1;
pub mod v2;

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use hierarchy::read_kernel_text;
pub use hierarchy::{hierarchies, Hierarchy};

/// Parent of containers whose config gives no cgroupsPath.
const DEFAULT_PARENT: &str = "paddock";

pub struct Cgroup {
    /// One directory per hierarchy; the first one with cgroup.procs is used to list pids.
    pub dirs: Vec<PathBuf>,
    hiers: Vec<Hierarchy>,
    /// What `create` made on pure v2, undone by `discard` when create fails.
    made: Made,
}

/// Directories made (top-down) and controllers enabled in a parent's
/// subtree_control (dir, controller) while creating a v2 cgroup.
#[derive(Default)]
pub struct Made {
    pub dirs: Vec<PathBuf>,
    pub enabled: Vec<(PathBuf, String)>,
}

/// The cgroup path relative to each hierarchy root, from linux.cgroupsPath. The
/// default is `paddock/<id>` under the default --root; containers of another state
/// root get a suffix from it, since IDs are unique only within one root.
pub fn relative_path(cgroups_path: Option<&Path>, id: &str, root: &Path) -> Result<PathBuf> {
    let p = match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(Path::new(DEFAULT_PARENT).join(default_leaf(id, root))),
    };
    if p.as_os_str().to_string_lossy().contains(':') {
        bail!("linux.cgroupsPath: {} is a systemd slice path (slice:prefix:name), which needs --systemd-cgroup", p.display());
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

fn default_leaf(id: &str, root: &Path) -> String {
    if root == Path::new(crate::state::DEFAULT_ROOT) {
        return id.to_string();
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    // The ID is at most 255 bytes of ASCII; keep the name within NAME_MAX.
    format!("{}-{:08x}", &id[..id.len().min(240)], hash as u32)
}

impl Cgroup {
    /// Creates the cgroup in every hierarchy. v1 cpuset needs cpus/mems before
    /// tasks join; on pure v2 the parents delegate their controllers downwards.
    /// An existing cgroup is taken over only when it is empty and not frozen,
    /// as runc checks: another container's processes must not be shared, and a
    /// frozen cgroup would freeze the new init halfway through its setup.
    pub fn create(rel: &Path) -> Result<Cgroup> {
        let existing = Cgroup::open(rel)?;
        let pids = existing.pids();
        if !pids.is_empty() {
            bail!(
                "container's cgroup is not empty: {} process(es) found",
                pids.len()
            );
        }
        if freezer::is_frozen(&existing) {
            bail!("container's cgroup unexpectedly frozen");
        }
        let hiers = hierarchies()?;
        let pure_v2 = hierarchy::is_pure_v2(&hiers);
        if let Some(h) = hiers.iter().find(|h| pure_v2 && h.v2) {
            if let Some(dir) = freezer::frozen_ancestor(&h.mount, rel) {
                bail!(
                    "cgroup {} is frozen: the container's processes would freeze in it",
                    dir.display()
                );
            }
        }
        let mut cg = Cgroup {
            dirs: Vec::new(),
            hiers: Vec::new(),
            made: Made::default(),
        };
        for h in hiers {
            let result = make_dir(&h, rel, pure_v2, &mut cg.made);
            cg.dirs.push(h.mount.join(rel));
            cg.hiers.push(h);
            if let Err(e) = result {
                cg.discard();
                return Err(e);
            }
        }
        Ok(cg)
    }

    /// On pure v2, runc's check of the cgroup types on the way down (see
    /// v2::enter_levels); `domain` says whether the resources need domain controllers.
    pub fn enter_v2(&mut self, domain: bool) -> Result<()> {
        if !self.is_pure_v2() {
            return Ok(());
        }
        let Some((h, dir)) = self.hiers.iter().zip(&self.dirs).find(|(h, _)| h.v2) else {
            return Ok(());
        };
        let rel = dir.strip_prefix(&h.mount).unwrap_or(dir).to_path_buf();
        v2::enter_levels(&h.mount.clone(), &rel, domain, &mut self.made)
    }

    /// Undoes a failed create: the cgroup, the directories above it that
    /// create made, and the controllers it enabled where no other cgroup
    /// below them is left to use them.
    pub fn discard(&self) {
        let _ = self.remove();
        for d in self.made.dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
        for (dir, ctrl) in self.made.enabled.iter().rev() {
            if !has_child_cgroups(dir) {
                let _ = fs::write(dir.join("cgroup.subtree_control"), format!("-{ctrl}"));
            }
        }
    }

    /// No cgroup (yet): the systemd driver clones init where the runtime is and systemd
    /// moves it into the unit it makes (systemd::adopt); a rootless container where none
    /// could be made has none at all.
    pub fn none() -> Cgroup {
        Cgroup {
            dirs: Vec::new(),
            hiers: Vec::new(),
            made: Made::default(),
        }
    }

    /// The cgroup of an existing container (directories that still exist).
    pub fn open(rel: &Path) -> Result<Cgroup> {
        Cgroup::open_where(rel, |_| true)
    }

    /// `open` limited to the hierarchies `wanted` picks.
    fn open_where(rel: &Path, wanted: impl Fn(&Hierarchy) -> bool) -> Result<Cgroup> {
        let mut cg = Cgroup {
            dirs: Vec::new(),
            hiers: Vec::new(),
            made: Made::default(),
        };
        for h in hierarchies()?.into_iter().filter(|h| wanted(h)) {
            let d = h.mount.join(rel);
            if d.is_dir() {
                cg.dirs.push(d);
                cg.hiers.push(h);
            }
        }
        Ok(cg)
    }

    /// True when the host has only the v2 hierarchy.
    pub fn is_pure_v2(&self) -> bool {
        hierarchy::is_pure_v2(&self.hiers)
    }

    /// The directory of a v1 controller ("memory", "cpu", ...), if mounted.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.hiers
            .iter()
            .zip(&self.dirs)
            .find(|(h, _)| !h.v2 && h.controllers.iter().any(|c| c == controller))
            .map(|(_, d)| d.as_path())
    }

    /// The directory in the v2 hierarchy (pure v2, or a hybrid host's unified mount).
    pub fn v2_dir(&self) -> Option<&Path> {
        self.hiers
            .iter()
            .zip(&self.dirs)
            .find(|(h, _)| h.v2)
            .map(|(_, d)| d.as_path())
    }

    /// Every process in the cgroup (and, on v2, its child cgroups).
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.iter().find(|d| d.join("cgroup.procs").exists()) else {
            return Vec::new();
        };
        let mut pids = Vec::new();
        collect_pids(dir, &mut pids);
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILL to everything through v2 cgroup.kill; false where the kernel has none.
    pub fn kill_all(&self) -> bool {
        self.v2_dir()
            .map(|d| d.join("cgroup.kill"))
            .filter(|f| f.exists())
            .is_some_and(|f| fs::write(f, "1").is_ok())
    }

    /// Removes the directories, retrying while exiting processes still hold them (EBUSY).
    pub fn remove(&self) -> Result<()> {
        // Frozen processes cannot die; a paused container is thawed on its way out.
        let _ = freezer::thaw(self);
        for d in self.dirs.iter().rev() {
            remove_dir_retrying(d)?;
        }
        Ok(())
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = read_kernel_text(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

fn has_child_cgroups(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

fn remove_dir_retrying(dir: &Path) -> Result<()> {
    for attempt in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            // Busy: nested cgroups (e.g. made by a container with cgroupns) go
            // first; without any, processes are still exiting.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 199 => {
                if !remove_children(dir)? {
                    sleep(Duration::from_millis(10))
                }
            }
            Err(e) => return Err(e).with_context(|| format!("remove cgroup {}", dir.display())),
        }
    }
    Ok(())
}

/// Removes the cgroups below `dir`; false when there were none.
fn remove_children(dir: &Path) -> Result<bool> {
    let mut found = false;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dir_retrying(&e.path())?;
                found = true;
            }
        }
    }
    Ok(found)
}

/// On a v1 cpuset hierarchy a new cgroup starts with empty cpus/mems; copy the parent's down.
/// Only a v1 hierarchy with the cpuset controller can need it, so no other is looked at.
/// The cgroup's directory in one hierarchy, with its parents: on pure v2 each parent
/// delegates its controllers down; on v1 cpuset gets its cpus and mems.
pub(super) fn make_dir(h: &Hierarchy, rel: &Path, pure_v2: bool, made: &mut Made) -> Result<()> {
    if pure_v2 {
        return v2::create_delegating(&h.mount, rel, made);
    }
    let dir = h.mount.join(rel);
    fs::create_dir_all(&dir).with_context(|| format!("create cgroup {}", dir.display()))?;
    init_cpuset(h, rel)
}

fn init_cpuset(h: &Hierarchy, rel: &Path) -> Result<()> {
    let hierarchy = h.mount.as_path();
    // A cpuset mounted with noprefix names its files without "cpuset.": left alone.
    if !h.controllers.iter().any(|c| c == "cpuset") || !hierarchy.join("cpuset.cpus").exists() {
        return Ok(());
    }
    // What the level above holds once it is set up, per file: read as that
    // level's own value or just copied into it, so no level is read twice.
    let mut above: [Option<String>; 2] = [None, None];
    let mut cur = hierarchy.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        for (file, above) in ["cpuset.cpus", "cpuset.mems"].into_iter().zip(&mut above) {
            let own = read_kernel_text(cur.join(file)).unwrap_or_default();
            if !own.trim().is_empty() {
                *above = Some(own);
                continue;
            }
            let value = match above.take() {
                Some(v) => v,
                None => read_kernel_text(parent.join(file))
                    .with_context(|| format!("read {}", parent.join(file).display()))?,
            };
            fs::write(cur.join(file), value.trim())
                .with_context(|| format!("write {}", cur.join(file).display()))?;
            *above = Some(value);
        }
    }
    Ok(())
}

/// Whether the container's cgroup is frozen (for `state`: "paused"). Only the
/// hierarchies a freezer can be in are looked at: the v1 freezer, else v2.
pub fn is_paused(cgroup_path: &str) -> bool {
    let freezing = |h: &Hierarchy| h.v2 || h.controllers.iter().any(|c| c == "freezer");
    Cgroup::open_where(Path::new(cgroup_path), freezing).is_ok_and(|cg| freezer::is_frozen(&cg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_forms() {
        let d = Path::new(crate::state::DEFAULT_ROOT);
        assert_eq!(relative_path(None, "c", d).unwrap(), Path::new("paddock/c"));
        assert_eq!(
            relative_path(Some(Path::new("")), "c", d).unwrap(),
            Path::new("paddock/c")
        );
        assert_eq!(
            relative_path(Some(Path::new("/a/b")), "c", d).unwrap(),
            Path::new("a/b")
        );
        assert_eq!(
            relative_path(Some(Path::new("a/b")), "c", d).unwrap(),
            Path::new("a/b")
        );
        assert!(relative_path(Some(Path::new("/a/../b")), "c", d).is_err());
        assert!(relative_path(Some(Path::new("/")), "c", d).is_err());
        assert!(relative_path(Some(Path::new("system.slice:p:n")), "c", d).is_err());
    }

    #[test]
    fn other_state_roots_get_their_own_default_cgroup() {
        let a = relative_path(None, "c", Path::new("/tmp/a")).unwrap();
        let b = relative_path(None, "c", Path::new("/tmp/b")).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("paddock"));
        let long = "x".repeat(255);
        let p = relative_path(None, &long, Path::new("/tmp/a")).unwrap();
        assert!(p.file_name().unwrap().len() <= 255);
    }
}
