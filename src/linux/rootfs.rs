//! The rootfs as a whole: propagation, the bind mount that pivot_root needs,
//! masked and read-only paths, pivot_root itself; plus the fd-based mount
//! primitives shared with `mounts`, mountinfo parsing and the cgroup mount.
//!
//! Everything before `pivot_root` runs in the container's new mount namespace
//! but still sees the host filesystem and the host /proc: `/proc/self/fd/N`
//! mount paths and the host /dev/null rely on that.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{fstat, SFlag};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use crate::linux::mounts::{bind_into_root, parse_options, propagation_flags, MS_NOSYMFOLLOW};
use crate::linux::safepath::{
    fd_path, file_type, is_not_found, mkdir_all_in_root, open_host, open_in_root,
};

const ATIME_FLAGS: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);
/// statvfs flag for nosymfollow (linux/statfs.h), missing from libc.
const ST_NOSYMFOLLOW: libc::c_ulong = 0x2000;

/// Step 1: sets the propagation of every mount in the new namespace: rslave, or
/// rprivate when asked, so nothing mounted for the container reaches the host.
/// A shared or unbindable rootfsPropagation is applied only after pivot_root:
/// shared here would propagate to the host, unbindable would refuse our rbinds.
pub fn set_root_propagation(propagation: Option<&str>) -> Result<()> {
    let flags = match propagation.filter(|p| !p.is_empty()) {
        Some(name) if rootfs_propagation(name)?.contains(MsFlags::MS_PRIVATE) => {
            MsFlags::MS_PRIVATE
        }
        _ => MsFlags::MS_SLAVE,
    };
    change_mount(Path::new("/"), flags | MsFlags::MS_REC).context("set propagation of /")
}

/// Step 9 (after pivot_root): applies `rootfsPropagation` to the container's
/// whole tree, so e.g. "shared" shows on / and every mount under it.
pub fn apply_propagation_after_pivot(propagation: Option<&str>) -> Result<()> {
    let Some(name) = propagation.filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    change_mount(Path::new("/"), rootfs_propagation(name)? | MsFlags::MS_REC)
        .with_context(|| format!("set propagation {name} on /"))
}

fn rootfs_propagation(name: &str) -> Result<MsFlags> {
    propagation_flags(name)
        .ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {name:?}"))
}

/// Step 2: bind-mounts the rootfs onto itself (pivot_root needs a mount
/// point) after making its parent mount private (pivot_root refuses a shared
/// parent, and the bind must not propagate). Returns an `O_PATH` fd of it.
pub fn bind_rootfs(rootfs: &Path) -> Result<OwnedFd> {
    let rootfs =
        fs::canonicalize(rootfs).with_context(|| format!("resolve rootfs {}", rootfs.display()))?;
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    if let Some(parent) = parent_mount(&parse_mountinfo(&mountinfo), &rootfs) {
        if parent.optional.iter().any(|o| o.starts_with("shared:")) {
            change_mount(&parent.mount_point, MsFlags::MS_PRIVATE)
                .with_context(|| format!("make {} private", parent.mount_point.display()))?;
        }
    }
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    nix::mount::mount(Some(&rootfs), &rootfs, None::<&str>, flags, None::<&str>)
        .with_context(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    open_host(&rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY)
}

/// The mount `path` lives on: the deepest mount point above it, the last
/// (topmost) one when several are stacked there.
fn parent_mount<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

/// Step 6: hides each path that exists: directories under one read-only
/// tmpfs (bound onto all of them), anything else under the host's /dev/null.
pub fn mask_paths(root: BorrowedFd<'_>, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = open_dev_null()?;
    let mut tmpfs = None;
    for path in paths {
        mask_path(root, Path::new(path), null.as_fd(), &mut tmpfs)
            .with_context(|| format!("mask {path}"))?;
    }
    Ok(())
}

fn mask_path(
    root: BorrowedFd<'_>,
    path: &Path,
    null: BorrowedFd<'_>,
    tmpfs: &mut Option<OwnedFd>,
) -> Result<()> {
    let target = match open_in_root(root, path, libc::O_PATH) {
        Err(e) if is_not_found(&e) => return Ok(()),
        other => other?,
    };
    let st = fstat(target.as_raw_fd()).context("stat")?;
    if file_type(&st) != SFlag::S_IFDIR {
        return bind_fd(null, target.as_fd(), false).context("bind /dev/null");
    }
    if let Some(shared) = tmpfs {
        return bind_fd(shared.as_fd(), target.as_fd(), false).context("bind masking tmpfs");
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs_fd(
        Path::new("tmpfs"),
        target.as_fd(),
        "tmpfs",
        flags,
        "mode=755",
    )
    .context("mount tmpfs")?;
    *tmpfs = Some(reopen_mounted(root, path, target.as_fd())?);
    Ok(())
}

/// The host's /dev/null, checked to be the real null device (CVE-2025-31133).
fn open_dev_null() -> Result<OwnedFd> {
    let fd = open_host(Path::new("/dev/null"), OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
    let st = fstat(fd.as_raw_fd()).context("stat /dev/null")?;
    if file_type(&st) != SFlag::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        bail!("/dev/null is not the null device (char 1:3)");
    }
    Ok(fd)
}

/// Step 6: makes each path that exists read-only (a bind onto itself, then a
/// read-only remount that keeps its other flags).
pub fn readonly_paths(root: BorrowedFd<'_>, paths: &[String]) -> Result<()> {
    for path in paths {
        readonly_path(root, Path::new(path)).with_context(|| format!("make {path} read-only"))?;
    }
    Ok(())
}

fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let target = match open_in_root(root, path, libc::O_PATH) {
        Err(e) if is_not_found(&e) => return Ok(()),
        other => other?,
    };
    bind_fd(target.as_fd(), target.as_fd(), true).context("bind onto itself")?;
    let mounted = reopen_mounted(root, path, target.as_fd())?;
    remount_bind(mounted.as_fd(), MsFlags::MS_RDONLY, MsFlags::empty())
}

/// Step 7 (root.readonly): remounts the rootfs bind mount read-only.
pub fn make_root_readonly(root: BorrowedFd<'_>) -> Result<()> {
    remount_bind(root, MsFlags::MS_RDONLY, MsFlags::empty()).context("remount rootfs read-only")
}

/// Step 8: makes the rootfs `/` and detaches the old root.
pub fn pivot_root(root: BorrowedFd<'_>) -> Result<()> {
    let old_root = open_host(Path::new("/"), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    nix::unistd::fchdir(root.as_raw_fd()).context("fchdir to rootfs")?;
    // pivot_root(".", ".") stacks the old root on top of the new one.
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    // Work on the old root's mount, not the new root's mount under it.
    nix::unistd::fchdir(old_root.as_raw_fd()).context("fchdir to old root")?;
    drop(old_root);
    // rslave first, so that detaching the old root does not reach the host.
    change_mount(Path::new("."), MsFlags::MS_SLAVE | MsFlags::MS_REC)
        .context("make old root rslave")?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).context("detach old root")?;
    nix::unistd::chdir("/").context("chdir /")
}

/// Step 8 with --no-pivot: moves the rootfs mount onto / and chroots into it.
pub fn move_root_no_pivot(root: BorrowedFd<'_>) -> Result<()> {
    nix::unistd::fchdir(root.as_raw_fd()).context("fchdir to rootfs")?;
    let flags = MsFlags::MS_MOVE;
    nix::mount::mount(Some("."), "/", None::<&str>, flags, None::<&str>)
        .context("move rootfs to /")?;
    nix::unistd::chroot(".").context("chroot to rootfs")?;
    nix::unistd::chdir("/").context("chdir /")
}

/// Bind-mounts what `source` names onto what `target` names, both by fd.
pub(crate) fn bind_fd(
    source: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    recursive: bool,
) -> nix::Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    let (source, target) = (fd_path(source), fd_path(target));
    nix::mount::mount(Some(&source), &target, None::<&str>, flags, None::<&str>)
}

/// Mounts a new `fstype` filesystem on the directory `target` names.
pub(crate) fn mount_fs_fd(
    source: &Path,
    target: BorrowedFd<'_>,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> nix::Result<()> {
    let data = Some(data).filter(|d| !d.is_empty());
    nix::mount::mount(Some(source), &fd_path(target), Some(fstype), flags, data)
}

/// mount(2) without source or type: remounts and propagation changes.
pub(crate) fn change_mount(target: &Path, flags: MsFlags) -> nix::Result<()> {
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// After a mount onto `below`, re-resolves `dest` inside the rootfs and checks
/// that it now lands on a different mount: `below` itself still names the
/// covered directory, so flags and propagation must go through the new fd.
pub(crate) fn reopen_mounted(
    root: BorrowedFd<'_>,
    dest: &Path,
    below: BorrowedFd<'_>,
) -> Result<OwnedFd> {
    let fd = open_in_root(root, dest, libc::O_PATH)?;
    if mount_id(fd.as_fd())? == mount_id(below)? {
        bail!(
            "{}: new mount not found at the resolved path",
            dest.display()
        );
    }
    Ok(fd)
}

fn mount_id(fd: BorrowedFd<'_>) -> Result<u64> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: the path is a valid C string and stx a valid out pointer.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    Errno::result(ret).context("statx mount id")?;
    Ok(stx.stx_mnt_id)
}

/// Remounts the bind mount `target` with `set` added and `clear` removed,
/// keeping its other per-mount flags: in a user namespace the kernel refuses
/// (EPERM) a remount that drops locked nosuid/nodev/noexec/atime flags.
pub(crate) fn remount_bind(target: BorrowedFd<'_>, set: MsFlags, clear: MsFlags) -> Result<()> {
    let mut flags = current_mount_flags(target)?;
    if (set | clear).intersects(ATIME_FLAGS) {
        flags.remove(ATIME_FLAGS);
    }
    flags.insert(set);
    flags.remove(clear | MsFlags::MS_REC);
    flags.insert(MsFlags::MS_REMOUNT | MsFlags::MS_BIND);
    change_mount(&fd_path(target), flags).context("remount bind mount")
}

/// Per-mount flags of the mount `fd` is on, as MS_* flags.
fn current_mount_flags(fd: BorrowedFd<'_>) -> Result<MsFlags> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: st is a valid out pointer for fstatvfs.
    let ret = unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    Errno::result(ret).context("statvfs")?;
    // SAFETY: fstatvfs succeeded, so it filled st.
    let bits = unsafe { st.assume_init() }.f_flag;
    let map = [
        (libc::ST_RDONLY, MsFlags::MS_RDONLY),
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
        (ST_NOSYMFOLLOW, MS_NOSYMFOLLOW),
    ];
    let mut flags = MsFlags::empty();
    for (st_flag, ms_flag) in map {
        if bits & st_flag != 0 {
            flags.insert(ms_flag);
        }
    }
    // Neither noatime nor relatime: the mount uses strictatime.
    if !flags.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        flags.insert(MsFlags::MS_STRICTATIME);
    }
    Ok(flags)
}

/// One line of /proc/self/mountinfo (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    pub mount_point: PathBuf,
    /// Optional fields such as "shared:1" or "master:2".
    pub optional: Vec<String>,
    pub fstype: String,
    pub super_options: String,
}

pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    Some(MountInfo {
        mount_point: PathBuf::from(unescape_octal(left.get(4)?)),
        optional: left
            .get(6..)
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        fstype: right.next()?.to_string(),
        super_options: right.nth(1).unwrap_or_default().to_string(),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match digits {
            Some(d) if b[i] == b'\\' => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A host cgroup hierarchy to reproduce under the container's cgroup mount.
#[derive(Debug, PartialEq, Eq)]
struct Hierarchy {
    /// Host mount point, e.g. /sys/fs/cgroup/cpu,cpuacct.
    host: PathBuf,
    fstype: String,
    /// Mount data naming the same hierarchy, e.g. "cpu,cpuacct" or "name=systemd".
    data: String,
}

/// The v1 hierarchies (and a hybrid host's cgroup2 "unified") mounted side
/// by side in the host's cgroup root, e.g. /sys/fs/cgroup/*.
fn cgroup_hierarchies(mounts: &[MountInfo]) -> Vec<Hierarchy> {
    let Some(base) = mounts
        .iter()
        .find(|m| m.fstype == "cgroup")
        .and_then(|m| m.mount_point.parent())
    else {
        return Vec::new();
    };
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        if !(m.fstype == "cgroup" || m.fstype == "cgroup2") || m.mount_point.parent() != Some(base)
        {
            continue;
        }
        let data: Vec<&str> = m
            .super_options
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent="))
            .collect();
        out.retain(|h| h.host != m.mount_point);
        out.push(Hierarchy {
            host: m.mount_point.clone(),
            fstype: m.fstype.clone(),
            data: data.join(","),
        });
    }
    out
}

/// cgroup filesystems at `dest`, always read-only (CVE-2023-25809). On a v1
/// host: a tmpfs holding one mount per host hierarchy (co-mounted controllers
/// also get symlinks, as on the host); on a v2 host: cgroup2.
pub(crate) fn mount_cgroup(
    root: BorrowedFd<'_>,
    dest: &Path,
    flags: MsFlags,
    in_userns: bool,
) -> Result<()> {
    let flags = flags | MsFlags::MS_RDONLY;
    let host_root = Path::new("/sys/fs/cgroup");
    let host_v2 = statfs(host_root).map(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
    if host_v2.context("statfs /sys/fs/cgroup")? {
        return mount_cgroupfs(root, dest, "cgroup2", "", flags, host_root, in_userns);
    }
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let base = mkdir_all_in_root(root, dest, 0o755)?;
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs_fd(
        Path::new("tmpfs"),
        base.as_fd(),
        "tmpfs",
        tmpfs_flags,
        "mode=755",
    )
    .context("mount tmpfs")?;
    let tmpfs = reopen_mounted(root, dest, base.as_fd())?;
    for h in cgroup_hierarchies(&parse_mountinfo(&mountinfo)) {
        let Some(name) = h.host.file_name() else {
            continue;
        };
        mount_cgroupfs(
            root,
            &dest.join(name),
            &h.fstype,
            &h.data,
            flags,
            &h.host,
            in_userns,
        )?;
        let name = name.to_string_lossy();
        for part in name.split(',').filter(|p| *p != name) {
            match nix::unistd::symlinkat(name.as_ref(), Some(tmpfs.as_raw_fd()), part) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("symlink {part} -> {name}")),
            }
        }
    }
    remount_bind(tmpfs.as_fd(), MsFlags::MS_RDONLY, MsFlags::empty())
}

fn mount_cgroupfs(
    root: BorrowedFd<'_>,
    dest: &Path,
    fstype: &str,
    data: &str,
    flags: MsFlags,
    host: &Path,
    in_userns: bool,
) -> Result<()> {
    let target = mkdir_all_in_root(root, dest, 0o755)?;
    match mount_fs_fd(Path::new(fstype), target.as_fd(), fstype, flags, data) {
        Ok(()) => Ok(()),
        // Without a cgroup namespace of its own, a user namespace may not
        // mount cgroupfs: bind the host's hierarchy, read-only.
        Err(Errno::EPERM) if in_userns => {
            let mut opts = parse_options(&[]);
            opts.flags = flags;
            opts.is_bind = true;
            opts.is_recursive_bind = true;
            bind_into_root(root, dest, host, &opts)
        }
        Err(e) => Err(e).with_context(|| format!("mount {fstype} on {}", dest.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
50 27 0:40 / /srv/my\\040dir rw master:3 - tmpfs none rw
51 27 0:41 / /tmp/x rw - cgroup cgroup rw,pids
";

    #[test]
    fn parses_mountinfo_fields_and_escapes() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 8);
        assert_eq!(m[0].mount_point, Path::new("/proc"));
        assert_eq!(m[0].optional, vec!["shared:5"]);
        assert_eq!(m[0].fstype, "proc");
        assert!(m[2].optional.is_empty());
        assert_eq!(m[6].mount_point, Path::new("/srv/my dir"));
        assert_eq!(m[6].optional, vec!["master:3"]);
        assert_eq!(m[3].super_options, "rw,cpu,cpuacct");
    }

    #[test]
    fn finds_the_mount_a_path_lives_on() {
        let m = parse_mountinfo(MOUNTINFO);
        let parent = |p: &str| parent_mount(&m, Path::new(p)).map(|m| m.mount_point.clone());
        assert_eq!(
            parent("/srv/my dir/bundle/rootfs"),
            Some(PathBuf::from("/srv/my dir"))
        );
        assert_eq!(parent("/srv/other"), Some(PathBuf::from("/")));
        assert_eq!(parent("/proc"), Some(PathBuf::from("/proc")));
    }

    #[test]
    fn lists_host_cgroup_hierarchies_with_their_mount_data() {
        let hierarchies = cgroup_hierarchies(&parse_mountinfo(MOUNTINFO));
        let got: Vec<_> = hierarchies
            .iter()
            .map(|h| (h.host.to_str().unwrap(), h.fstype.as_str(), h.data.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                ("/sys/fs/cgroup/systemd", "cgroup", "xattr,name=systemd"),
                ("/sys/fs/cgroup/unified", "cgroup2", ""),
            ]
        );
    }

    #[test]
    fn rejects_unknown_rootfs_propagation() {
        let err = set_root_propagation(Some("sideways")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.rootfsPropagation: unknown value \"sideways\""
        );
        assert_eq!(
            rootfs_propagation("rshared").unwrap(),
            MsFlags::MS_SHARED | MsFlags::MS_REC
        );
    }
}
