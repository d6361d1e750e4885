//! What CRIU must be told about the container's mounts, as runc tells it: bind
//! mounts, the v1 cgroup binds, masked files and device nodes are "external"
//! (their source lies outside the container), mapped to themselves on dump and
//! to their host sources on restore. On restore, CRIU's root is a bind of the
//! rootfs under the state directory, with every mount point present.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};

use crate::linux::cgroups::hierarchies;
use crate::linux::safepath::{create_file_in_root, mkdir_all_in_root, open_host, open_in_root};

/// runc's default device nodes, always present in a container.
const DEFAULT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// The host's view of one external mount: where it is inside, where it comes from.
struct External {
    dest: String,
    source: PathBuf,
}

/// ext_mnt pairs for a dump: each external mount point mapped to itself (its key
/// in the images). `live_root` is the container's root as the host sees it.
pub fn for_dump(spec: &Spec, bundle: &Path, live_root: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = externals(spec, bundle, live_root, None)
        .into_iter()
        .map(|e| (e.dest.clone(), e.dest))
        .collect();
    // Masked files are /dev/null bound over them; masked directories are tmpfs.
    for p in masked(spec) {
        let inside = live_root.join(p.trim_start_matches('/'));
        if fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) {
            out.push((p.clone(), "/dev/null".to_string()));
        }
    }
    out
}

/// ext_mnt pairs for a restore: each key mapped to the host path to bind there.
/// `cgroup_rel` is the restored container's cgroup (for the v1 cgroup binds).
pub fn for_restore(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroup_rel: &Path,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = externals(spec, bundle, rootfs, Some(cgroup_rel))
        .into_iter()
        .map(|e| (e.dest, e.source.to_string_lossy().into_owned()))
        .collect();
    if !masked(spec).is_empty() {
        out.push(("/dev/null".to_string(), "/dev/null".to_string()));
    }
    out
}

fn masked(spec: &Spec) -> Vec<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
}

fn mounts(spec: &Spec) -> &[Mount] {
    spec.mounts().as_deref().unwrap_or_default()
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

fn has_cgroupns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup)
        })
}

/// Bind mounts, the per-hierarchy binds of a v1 cgroup mount (without a cgroup
/// namespace), and device nodes. `cgroup_rel` gives the sources of the cgroup
/// binds (only a restore needs them).
fn externals(spec: &Spec, bundle: &Path, root: &Path, cgroup_rel: Option<&Path>) -> Vec<External> {
    let mut out = Vec::new();
    for m in mounts(spec) {
        if is_bind(m) {
            let source = bundle.join(m.source().as_deref().unwrap_or(Path::new("")));
            out.push(External {
                dest: inside_path(root, m.destination()),
                source,
            });
        } else if m.typ().as_deref() == Some("cgroup") && !has_cgroupns(spec) {
            out.extend(cgroup_binds(root, m.destination(), cgroup_rel));
        }
    }
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let paths = devices
        .iter()
        .map(|d| d.path().clone())
        .chain(DEFAULT_DEVICES.iter().map(PathBuf::from));
    for p in paths {
        out.push(External {
            dest: inside_path(root, &p),
            source: p,
        });
    }
    out
}

/// One bind per v1 hierarchy under the cgroup mount (none on pure v2), as
/// rootfs.rs mounts them.
fn cgroup_binds(root: &Path, dest: &Path, cgroup_rel: Option<&Path>) -> Vec<External> {
    let Ok(hiers) = hierarchies() else {
        return Vec::new();
    };
    let host_root = Path::new("/sys/fs/cgroup");
    hiers
        .into_iter()
        .filter(|h| !h.v2 && h.mount.parent() == Some(host_root))
        .filter_map(|h| {
            let name = h.mount.file_name()?.to_owned();
            Some(External {
                dest: inside_path(root, &dest.join(&name)),
                source: cgroup_rel.map_or_else(|| h.mount.clone(), |rel| h.mount.join(rel)),
            })
        })
        .collect()
}

/// `dest` with symlinks resolved inside `root` (as runc's securejoin does), as an
/// absolute path inside the container; the plain path where it cannot be resolved.
fn inside_path(root: &Path, dest: &Path) -> String {
    let plain = clean(dest);
    let resolved = open_host(root, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .and_then(|r| open_in_root(r.as_fd(), dest, libc::O_PATH))
        .and_then(|fd| {
            fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).context("readlink")
        })
        .ok()
        .and_then(|host| {
            let root = fs::canonicalize(root).ok()?;
            let rel = host.strip_prefix(&root).ok()?.to_path_buf();
            Some(Path::new("/").join(rel))
        });
    resolved.unwrap_or(plain).to_string_lossy().into_owned()
}

fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The rootfs bound (recursively) at `<state dir>/criu-root` for CRIU to restore
/// into; unmounted and removed when dropped, as runc does after the restore.
pub struct RestoreRoot {
    pub path: PathBuf,
}

impl RestoreRoot {
    pub fn bind(rootfs: &Path, state_dir: &Path) -> Result<RestoreRoot> {
        let path = state_dir.join("criu-root");
        fs::create_dir(&path).with_context(|| format!("create {}", path.display()))?;
        let root = RestoreRoot { path };
        mount(
            Some(rootfs),
            &root.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind {} for criu", rootfs.display()))?;
        Ok(root)
    }
}

impl Drop for RestoreRoot {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(&self.path);
    }
}

/// Creates the mount points CRIU needs in the rootfs (resolved inside it): a file
/// where a bind mount's source is not a directory, else a directory. Mounts
/// under a tmpfs mount and cgroup mounts are skipped, as runc skips them: CRIU
/// restores those itself.
pub fn prepare_mountpoints(spec: &Spec, bundle: &Path, rootfs: &Path) -> Result<()> {
    let root: OwnedFd = open_host(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    let ms = mounts(spec);
    let tmpfs: Vec<PathBuf> = ms
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| clean(m.destination()))
        .collect();
    for m in ms {
        let dest = clean(m.destination());
        let on_tmpfs = tmpfs.iter().any(|t| dest != *t && dest.starts_with(t));
        if m.typ().as_deref() == Some("cgroup") || on_tmpfs {
            continue;
        }
        let file = is_bind(m)
            && !fs::metadata(bundle.join(m.source().as_deref().unwrap_or(Path::new(""))))
                .is_ok_and(|md| md.is_dir());
        let made = if file {
            create_file_in_root(root.as_fd(), &dest, 0o755)
        } else {
            mkdir_all_in_root(root.as_fd(), &dest, 0o755)
        };
        made.with_context(|| format!("create criu restore mountpoint for {}", dest.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_lexically() {
        assert_eq!(clean(Path::new("a/../b/./c/")), PathBuf::from("/b/c"));
        assert_eq!(clean(Path::new("/../x")), PathBuf::from("/x"));
    }
}
