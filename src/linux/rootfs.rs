//! The rootfs as a whole: propagation, the bind mount that pivot_root needs,
//! masked and read-only paths, pivot_root itself; plus the fd-based mount
//! primitives shared with `mounts`, mountinfo parsing and the cgroup mount.
//!
//! Everything before `pivot_root` runs in the container's new mount namespace
//! but still sees the host filesystem and the host /proc: `/proc/self/fd/N`
//! mount paths and the host /dev/null rely on that.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{fstat, SFlag};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use crate::linux::cgroups;
use crate::linux::mounts::{bind_into_root, parse_options, propagation_flags, MS_NOSYMFOLLOW};
use crate::linux::safepath::{
    fd_path, file_type, mkdir_all_in_root, open_host, open_if_exists_in_root, open_in_root,
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

/// Step 9 (after pivot_root): a shared or unbindable `rootfsPropagation` on the
/// container's /, recursively only for the r-variants, as runc 1.5 applies it
/// (private and slave were applied, recursively, in step 1).
pub fn apply_propagation_after_pivot(propagation: Option<&str>) -> Result<()> {
    let Some(name) = propagation.filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let flags = rootfs_propagation(name)?;
    if flags.intersects(MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE) {
        return Ok(());
    }
    change_mount(Path::new("/"), flags).with_context(|| format!("set propagation {name} on /"))
}

fn rootfs_propagation(name: &str) -> Result<MsFlags> {
    propagation_flags(name)
        .ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {name:?}"))
}

/// Step 2: bind-mounts the rootfs onto itself (pivot_root needs a mount
/// point). Step 1 left no mount in this namespace shared, so pivot_root accepts
/// the parent and the bind propagates nowhere. Returns an `O_PATH` fd of it.
pub fn bind_rootfs(rootfs: &Path) -> Result<OwnedFd> {
    let rootfs =
        fs::canonicalize(rootfs).with_context(|| format!("resolve rootfs {}", rootfs.display()))?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    nix::mount::mount(Some(&rootfs), &rootfs, None::<&str>, flags, None::<&str>)
        .with_context(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    open_host(&rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY)
}

/// Step 2 without a mount namespace: the rootfs bind (in the host's mount
/// namespace) becomes private, so nothing mounted under it reaches other
/// namespaces; its removal at delete reaches them as its creation did.
pub fn make_rootfs_private(root: BorrowedFd<'_>) -> Result<()> {
    change_mount(&fd_path(root), MsFlags::MS_PRIVATE | MsFlags::MS_REC)
        .context("make the rootfs bind mount private")
}

/// The id of the topmost mount at `path` (`stat`-like, following symlinks).
pub fn mount_id_at(path: &Path) -> Result<u64> {
    let fd = open_host(path, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    mount_id(fd.as_fd())
}

/// Detaches, one by one, the mounts stacked on `path` above the mount `below`
/// (with everything mounted under each). Stops at `below`, or where `path` is
/// covered by something not mounted on `path` itself (EINVAL).
pub fn detach_mounts_above(path: &Path, below: u64) -> Result<()> {
    // Each pass removes one mount; a container could stack a few on its own root.
    for _ in 0..64 {
        if mount_id_at(path)? == below {
            return Ok(());
        }
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(e).with_context(|| format!("unmount {}", path.display())),
        }
    }
    bail!("{}: mounts remain above the rootfs", path.display())
}

/// Step 8 without a mount namespace: chroot into the rootfs (never pivot_root
/// or MS_MOVE, which would act on the host's /).
pub fn chroot_into(root: BorrowedFd<'_>) -> Result<()> {
    nix::unistd::fchdir(root.as_raw_fd()).context("fchdir to rootfs")?;
    nix::unistd::chroot(".").context("chroot to rootfs")?;
    nix::unistd::chdir("/").context("chdir /")
}

/// Step 6: hides each path that exists: directories under one read-only
/// tmpfs (bound onto all of them), anything else under the host's /dev/null.
pub fn mask_paths(root: BorrowedFd<'_>, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = open_dev_null()?;
    let mut tmpfs = None;
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        // A path listed twice (in any spelling) is masked once, as runc does.
        if !seen.insert(clean_path(Path::new(path))) {
            continue;
        }
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
    let Some(target) = open_if_exists_in_root(root, path, libc::O_PATH)? else {
        return Ok(());
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

/// `path` made absolute with `.`, `..` and repeated slashes resolved lexically.
pub(crate) fn clean_path(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(name) => out.push(name),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
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
    let Some(target) = open_if_exists_in_root(root, path, libc::O_PATH)? else {
        return Ok(());
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
/// First every whole procfs and sysfs outside the rootfs leaves this mount
/// namespace: under the chroot they would still count as "fully visible", so
/// a process in the container could unshare a user and mount namespace and
/// mount a fresh, unmasked /proc (runc does the same).
pub fn move_root_no_pivot(root: BorrowedFd<'_>) -> Result<()> {
    let rootfs = fs::read_link(fd_path(root)).context("readlink rootfs")?;
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    for mountpoint in full_proc_and_sys_mounts(&mountinfo) {
        if Path::new(&mountpoint).starts_with(&rootfs) {
            continue;
        }
        hide_host_mount(Path::new(&mountpoint))
            .with_context(|| format!("--no-pivot: hide {mountpoint}"))?;
    }
    nix::unistd::fchdir(root.as_raw_fd()).context("fchdir to rootfs")?;
    let flags = MsFlags::MS_MOVE;
    nix::mount::mount(Some("."), "/", None::<&str>, flags, None::<&str>)
        .context("move rootfs to /")?;
    nix::unistd::chroot(".").context("chroot to rootfs")?;
    nix::unistd::chdir("/").context("chdir /")
}

/// Mount points of every mount of a whole procfs or sysfs (root "/") in `mountinfo`.
fn full_proc_and_sys_mounts(mountinfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split_whitespace().collect();
        let fstype = post.split_whitespace().next().unwrap_or_default();
        if let (Some(&"/"), Some(mnt), "proc" | "sysfs") = (pre.get(3), pre.get(4), fstype) {
            out.push(crate::linux::cgroups::hierarchy::unescape_octal(mnt));
        }
    }
    out
}

/// Detaches `mountpoint` from this (the container's) mount namespace, or
/// covers it with an empty tmpfs where it may not be unmounted.
fn hide_host_mount(mountpoint: &Path) -> Result<()> {
    // rslave first, so that the unmount does not reach the host.
    match change_mount(mountpoint, MsFlags::MS_SLAVE | MsFlags::MS_REC) {
        Ok(()) => {}
        // A parent of it was detached already.
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).context("make rslave"),
    }
    match nix::mount::umount2(mountpoint, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL | Errno::EPERM) => {
            let flags = MsFlags::empty();
            nix::mount::mount(
                Some("tmpfs"),
                mountpoint,
                Some("tmpfs"),
                flags,
                None::<&str>,
            )
            .context("cover with tmpfs")
        }
        Err(e) => Err(e).context("unmount"),
    }
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
pub(crate) fn current_mount_flags(fd: BorrowedFd<'_>) -> Result<MsFlags> {
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

/// cgroup filesystems at `dest`, always read-only (CVE-2023-25809). On a v1
/// host, as runc: a tmpfs holding one directory per v1 hierarchy (co-mounted
/// controllers also get symlinks, as on the host), each showing the container's
/// own cgroup at its root: a fresh cgroupfs inside a cgroup namespace, else a
/// bind of the container's directory from the host. On a v2 host: cgroup2.
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
    let own_ns = cgroups::own::in_other_cgroup_ns();
    // Read by the parent before clone (cached): the host's layout, not ours.
    // Like runc, only the v1 hierarchies (not a hybrid host's unified mount).
    for h in cgroups::hierarchies()?.into_iter().filter(|h| !h.v2) {
        let Some(name) = h
            .mount
            .file_name()
            .filter(|_| h.mount.parent() == Some(host_root))
        else {
            continue;
        };
        // Resolved in the tmpfs just mounted (its fd is at hand), not again
        // from the rootfs: the hierarchy's directory is one name below it.
        let sub = Path::new(name);
        let shown = dest.join(name);
        if own_ns {
            let (data, host) = (&h.options, &h.mount);
            mount_cgroupfs(tmpfs.as_fd(), sub, "cgroup", data, flags, host, in_userns)
                .with_context(|| format!("cgroup hierarchy {}", shown.display()))?;
        } else {
            let mut opts = parse_options(&[]);
            opts.flags = flags;
            opts.is_bind = true;
            opts.is_recursive_bind = true;
            bind_into_root(tmpfs.as_fd(), sub, &cgroups::own::own_dir(&h)?, &opts, None)
                .with_context(|| format!("bind the container's cgroup on {}", shown.display()))?;
        }
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
        // mount cgroupfs: bind the host's hierarchy, read-only. cgroup2 says
        // EBUSY where the host's is visible below (a bound host /sys), as runc sees.
        Err(Errno::EPERM) if in_userns => bind_host_cgroupfs(root, dest, flags, host),
        Err(Errno::EBUSY) if in_userns && fstype == "cgroup2" => {
            bind_host_cgroupfs(root, dest, flags, host)
        }
        Err(e) => Err(e).with_context(|| format!("mount {fstype} on {}", dest.display())),
    }
}

fn bind_host_cgroupfs(
    root: BorrowedFd<'_>,
    dest: &Path,
    flags: MsFlags,
    host: &Path,
) -> Result<()> {
    let mut opts = parse_options(&[]);
    opts.flags = flags;
    opts.is_bind = true;
    opts.is_recursive_bind = true;
    bind_into_root(root, dest, host, &opts, None)
}

#[cfg(test)]
mod tests {
    use super::*;

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
