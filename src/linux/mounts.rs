//! `mounts[]` from config.json: option parsing and validation (pure), and
//! mounting each entry inside the rootfs. Every target is resolved inside the
//! rootfs and mounted through its fd (`/proc/self/fd/N` of the host procfs),
//! so a symlink in the image can never send a mount to the host.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, fstatat, SFlag};
use nix::sys::statfs::{fstatfs, statfs, PROC_SUPER_MAGIC};
use oci_spec::runtime::Mount;

use crate::linux::idmap::Tree;

mod options;
pub(crate) use options::{
    known_options, parse_options, propagation_flags, MountOptions, MS_NOSYMFOLLOW,
};

use crate::linux::rootfs::{
    bind_fd, change_mount, clean_path, current_mount_flags, mount_cgroup, mount_fs_fd,
    remount_bind, reopen_mounted,
};
use crate::linux::safepath::{
    copy_dir_contents, create_file_in_root, fd_path, file_type, mkdir_all_in_root, open_host,
    open_if_exists_in_root, open_in_root,
};

/// The entries under /proc that runc lets a mount cover (those lxcfs emulates).
const PROC_MOUNT_ALLOWLIST: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// Flags the kernel locks on a mount inherited from another user namespace
/// (MNT_LOCK_*): a bind of it must keep them.
const LOCKABLE_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOSUID)
    .union(ATIME_FLAGS);
const ATIME_FLAGS: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME)
    .union(MsFlags::MS_NODIRATIME);

/// Checks `mounts` before anything is created: a type (or bind options), a
/// source and no filesystem data for binds, and runc's rule for /proc. A
/// relative destination is taken relative to / with a warning, as runc does.
pub fn validate(mounts: &[Mount]) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        let dest = m.destination();
        if !dest.is_absolute() {
            crate::logger::warn(&format!(
                "mounts[{i}].destination: {} is not absolute; it is taken relative to /",
                dest.display()
            ));
        }
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        let typ = m.typ().as_deref().unwrap_or_default();
        let bind = is_bind(typ, &opts);
        if typ.is_empty() && !bind {
            bail!("mounts[{i}].type: required unless options contain bind or rbind");
        }
        if bind && m.source().as_ref().is_none_or(|s| s.as_os_str().is_empty()) {
            bail!("mounts[{i}].source: required for a bind mount");
        }
        if bind && !opts.data.is_empty() {
            bail!(
                "mounts[{i}].options: bind mounts cannot have any filesystem-specific options applied (got {:?})",
                opts.data
            );
        }
        let dest = clean_path(dest);
        if dest == Path::new("/") {
            // The rootfs is the mount pivot_root and the masks work on.
            bail!("mounts[{i}].destination: mountpoint \"/\" is on the top of rootfs");
        }
        if let Err(why) = check_proc_destination(&dest, typ, bind) {
            bail!("mounts[{i}].destination: {why}");
        }
    }
    Ok(())
}

/// Mounts every entry of `mounts`, in order, inside the rootfs `root`.
/// Needs the host /proc (before pivot_root). Relative bind sources are taken
/// relative to `bundle`. `in_userns` enables the EPERM fallbacks to host binds.
/// A tmpfs (or /dev) asked read-only stays writable until [`finish_readonly`],
/// so that later mounts, devices and hooks can still create files in it.
pub fn mount_all(
    root: BorrowedFd<'_>,
    mounts: &[Mount],
    bundle: &Path,
    in_userns: bool,
    trees: &mut [Option<Tree>],
) -> Result<()> {
    // spec::load has validated every entry before anything was created.
    for (i, m) in mounts.iter().enumerate() {
        let dest = clean_path(m.destination());
        let mut opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        let typ = m.typ().as_deref().unwrap_or_default();
        let bind = is_bind(typ, &opts);
        let what = if bind { "bind" } else { typ };
        let context = || format!("mounts[{i}]: mount {what} on {}", dest.display());
        check_ordinary_dir(root, &dest).with_context(context)?;
        if !bind && delays_readonly(typ, &dest) {
            opts.flags.remove(MsFlags::MS_RDONLY);
        }
        let done = if bind {
            let source = bundle.join(m.source().as_deref().unwrap_or(Path::new("")));
            check_proc_bind_source(&dest, &source).and_then(|()| {
                let tree = trees.get_mut(i).and_then(Option::take);
                bind_into_root(root, &dest, &source, &opts, tree)
            })
        } else if typ == "cgroup" {
            mount_cgroup(root, &dest, opts.flags, in_userns)
        } else {
            let source = m.source().as_deref().unwrap_or(Path::new(typ));
            mount_fs_into_root(root, &dest, source, typ, &opts, in_userns)
        };
        done.with_context(context)?;
    }
    Ok(())
}

/// Whether /dev is a bind mount: then it is the caller's, and runc creates no
/// device node or symlink in it.
pub fn binds_dev(mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        is_bind(m.typ().as_deref().unwrap_or_default(), &opts)
            && clean_path(m.destination()) == Path::new("/dev")
    })
}

/// Remounts read-only each tmpfs (and /dev) that [`mount_all`] left writable
/// although its options asked for "ro"; runc does the same, late.
pub fn finish_readonly(root: BorrowedFd<'_>, mounts: &[Mount]) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        let dest = clean_path(m.destination());
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        let typ = m.typ().as_deref().unwrap_or_default();
        if is_bind(typ, &opts)
            || !opts.flags.contains(MsFlags::MS_RDONLY)
            || !delays_readonly(typ, &dest)
        {
            continue;
        }
        let mounted = open_in_root(root, &dest, libc::O_PATH)?;
        remount_bind(mounted.as_fd(), MsFlags::MS_RDONLY, MsFlags::empty())
            .with_context(|| format!("mounts[{i}]: remount {} read-only", dest.display()))?;
    }
    Ok(())
}

/// A tmpfs is filled (copy-up, mode) and /dev gets its device nodes after the
/// mount: both are mounted writable and made read-only at the end.
fn delays_readonly(typ: &str, dest: &Path) -> bool {
    typ == "tmpfs" || dest == Path::new("/dev")
}

fn is_bind(typ: &str, opts: &MountOptions) -> bool {
    opts.is_bind || typ == "bind"
}

/// runc's rule for /proc (CVE-2019-16884: a fake /proc would let the image
/// redirect procfs writes): on /proc itself only proc, or a bind of a procfs
/// (its source is checked at mount time); under it only the entries lxcfs emulates.
fn check_proc_destination(dest: &Path, typ: &str, bind: bool) -> Result<(), String> {
    if !dest.starts_with("/proc") {
        return Ok(());
    }
    if dest == Path::new("/proc") {
        if bind || typ == "proc" {
            return Ok(());
        }
        return Err(format!(
            "{dest:?} cannot be mounted because it is not of type proc"
        ));
    }
    if PROC_MOUNT_ALLOWLIST.iter().any(|p| dest == Path::new(p)) {
        return Ok(());
    }
    Err(format!(
        "{dest:?} cannot be mounted because it is inside /proc"
    ))
}

/// A bind onto /proc itself must come from a procfs; one that is not the root
/// of a procfs is accepted with a warning, as runc does.
fn check_proc_bind_source(dest: &Path, source: &Path) -> Result<()> {
    if dest != Path::new("/proc") {
        return Ok(());
    }
    let fs = statfs(source).with_context(|| format!("statfs {}", source.display()))?;
    if fs.filesystem_type() != PROC_SUPER_MAGIC {
        bail!("{dest:?} cannot be mounted because it is not of type proc");
    }
    let st = nix::sys::stat::stat(source).with_context(|| format!("stat {}", source.display()))?;
    // The root directory of every procfs has inode 1.
    if st.st_ino != 1 {
        crate::logger::warn(&format!(
            "bind-mount {} (source {}) is of type procfs but is not the root of a procfs (inode {})",
            dest.display(),
            source.display(),
            st.st_ino
        ));
    }
    Ok(())
}

/// Whether a mount at `dest` may land in procfs (see [`check_proc_destination`]).
fn proc_mount_allowed(dest: &Path, typ: &str, bind: bool) -> bool {
    dest.starts_with("/proc") && check_proc_destination(dest, typ, bind).is_ok()
}

/// /proc and /sys must be real directories in the image: a symlink there
/// could move procfs/sysfs (and the masks over them) elsewhere (CVE-2019-19921).
fn check_ordinary_dir(root: BorrowedFd<'_>, dest: &Path) -> Result<()> {
    let Some(Component::Normal(first)) = dest.components().nth(1) else {
        return Ok(());
    };
    if first != "proc" && first != "sys" {
        return Ok(());
    }
    let name = first.to_string_lossy();
    match fstatat(Some(root.as_raw_fd()), first, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if file_type(&st) == SFlag::S_IFDIR => Ok(()),
        Err(Errno::ENOENT) => Ok(()),
        Ok(_) => bail!("/{name} must be mounted on ordinary directory"),
        Err(e) => Err(e).with_context(|| format!("stat /{name}")),
    }
}

/// Refuses a target that resolved into procfs unless this mount may go there
/// (catches symlinks in the image that lead to /proc).
fn check_not_on_procfs(target: BorrowedFd<'_>, allowed: bool) -> Result<()> {
    let fs = fstatfs(target).context("statfs mount target")?;
    if fs.filesystem_type() == PROC_SUPER_MAGIC && !allowed {
        bail!("target resolves into procfs: only proc may be mounted there");
    }
    Ok(())
}

/// Bind-mounts the host path `source` onto `dest` inside the rootfs, then
/// applies flags (second remount), recursive attributes and propagation. A `tree`
/// the parent opened (idmap.rs) is attached instead where it is id-mapped, or where
/// init may not open `source` itself.
pub(crate) fn bind_into_root(
    root: BorrowedFd<'_>,
    dest: &Path,
    source: &Path,
    opts: &MountOptions,
    tree: Option<Tree>,
) -> Result<()> {
    let tree = match tree {
        Some(t) if t.idmapped => Some(t),
        Some(t) => match open_host(source, OFlag::O_PATH) {
            Ok(fd) => return bind_source(root, dest, source, opts, fd, false),
            Err(e) if crate::linux::idmap::is_access_error(&e) => Some(t),
            Err(e) => return Err(e),
        },
        None => None,
    };
    match tree {
        Some(t) => bind_source(root, dest, source, opts, t.fd, true),
        None => {
            let fd = open_host(source, OFlag::O_PATH)?;
            bind_source(root, dest, source, opts, fd, false)
        }
    }
}

/// bind_into_root with the source open: a path (bind it) or a detached tree (attach it).
fn bind_source(
    root: BorrowedFd<'_>,
    dest: &Path,
    source: &Path,
    opts: &MountOptions,
    src: std::os::fd::OwnedFd,
    detached: bool,
) -> Result<()> {
    let st = fstat(src.as_raw_fd()).with_context(|| format!("stat {}", source.display()))?;
    let target = if file_type(&st) == SFlag::S_IFDIR {
        mkdir_all_in_root(root, dest, 0o755)?
    } else {
        create_file_in_root(root, dest, 0o644)?
    };
    check_not_on_procfs(target.as_fd(), proc_mount_allowed(dest, "", true))?;
    if detached {
        crate::linux::idmap::attach(&src, target.as_fd())
            .with_context(|| format!("attach the tree of {}", source.display()))?;
    } else {
        bind_fd(src.as_fd(), target.as_fd(), opts.is_recursive_bind)
            .with_context(|| format!("bind {}", source.display()))?;
    }
    let mounted = reopen_mounted(root, dest, target.as_fd())?;
    // As runc: no flag asked for (MS_REMOUNT aside) leaves the source's flags.
    if !((opts.flags - MsFlags::MS_REMOUNT) | opts.clear).is_empty() {
        set_bind_flags(mounted.as_fd(), src.as_fd(), opts)?;
    }
    apply_attrs_and_propagation(mounted.as_fd(), opts)
}

/// runc 1.5's rule for the flags of a bind mount: exactly the flags asked for,
/// the source's others cleared. When the kernel refuses that because the source
/// has locked flags (a mount from another user namespace), those are kept,
/// unless the options clear one of them or ask for a different atime.
fn set_bind_flags(mounted: BorrowedFd<'_>, src: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let target = fd_path(mounted);
    let err = match change_mount(&target, opts.flags | remount) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let src_flags = current_mount_flags(src)?;
    let cannot_clear = src_flags & opts.clear & LOCKABLE_FLAGS;
    if !cannot_clear.is_empty() {
        bail!("remount bind mount: cannot clear locked flags {cannot_clear:?}: {err}");
    }
    let asked_atime = opts.flags & ATIME_FLAGS;
    if !asked_atime.is_empty() && asked_atime != src_flags & ATIME_FLAGS {
        let locked = src_flags & ATIME_FLAGS;
        bail!("remount bind mount: cannot change locked atime flags {locked:?}: {err}");
    }
    let locked = src_flags & LOCKABLE_FLAGS;
    change_mount(&target, opts.flags | locked | remount)
        .with_context(|| format!("remount bind mount with locked flags {locked:?} re-applied"))
}

/// Mounts a filesystem of type `typ` on `dest` (a directory) inside the rootfs.
fn mount_fs_into_root(
    root: BorrowedFd<'_>,
    dest: &Path,
    source: &Path,
    typ: &str,
    opts: &MountOptions,
    in_userns: bool,
) -> Result<()> {
    // runc: a tmpfs without mode= takes the mode of the directory it covers.
    let mut data = opts.data.clone();
    let existing = match typ {
        "tmpfs" => open_if_exists_in_root(root, dest, libc::O_PATH)?,
        _ => None,
    };
    let mut target = None;
    if let Some(fd) = existing {
        let st = fstat(fd.as_raw_fd()).with_context(|| format!("stat {}", dest.display()))?;
        let mode = format!("mode={:04o}", st.st_mode & 0o7777);
        data = [mode, data].join(",").trim_end_matches(',').to_string();
        // The directory mkdir_all_in_root would resolve (the same scoped lookup).
        target = (file_type(&st) == SFlag::S_IFDIR).then_some(fd);
    }
    let target = match target {
        Some(fd) => fd,
        None => mkdir_all_in_root(root, dest, 0o755)?,
    };
    let allowed = typ == "proc" || proc_mount_allowed(dest, typ, false);
    check_not_on_procfs(target.as_fd(), allowed)?;
    // Opened before the mount covers it: the content tmpcopyup copies up.
    let lower = match typ == "tmpfs" && opts.copy_up {
        true => Some(open_in_root(
            root,
            dest,
            libc::O_RDONLY | libc::O_DIRECTORY,
        )?),
        false => None,
    };
    let mut flags = opts.flags;
    if typ == "cgroup2" {
        flags |= MsFlags::MS_RDONLY; // CVE-2023-25809: cgroupfs is never writable.
    }
    match mount_fs_fd(source, target.as_fd(), typ, flags, &data) {
        Ok(()) => {}
        // A user namespace that does not own the net/ipc namespace may not
        // mount sysfs/mqueue: bind the host's instead.
        Err(Errno::EPERM) if in_userns && host_fallback(typ).is_some() => {
            let host = host_fallback(typ).unwrap_or(Path::new("/"));
            let mut bind = opts.clone();
            (bind.is_bind, bind.is_recursive_bind) = (true, true);
            if opts.flags.contains(MsFlags::MS_RDONLY) {
                bind.attr_set |= libc::MOUNT_ATTR_RDONLY; // host submounts too
            }
            return bind_into_root(root, dest, host, &bind, None)
                .context("mount: EPERM in a user namespace, and binding the host's failed");
        }
        Err(e) => return Err(e).context("mount"),
    }
    if lower.is_none() && opts.attr_set | opts.attr_clr == 0 && opts.propagation.is_empty() {
        return Ok(());
    }
    let mounted = reopen_mounted(root, dest, target.as_fd())?;
    if let Some(lower) = lower {
        copy_dir_contents(lower.as_fd(), mounted.as_fd()).context("tmpcopyup")?;
    }
    apply_attrs_and_propagation(mounted.as_fd(), opts)
}

fn host_fallback(typ: &str) -> Option<&'static Path> {
    match typ {
        "sysfs" => Some(Path::new("/sys")),
        "mqueue" => Some(Path::new("/dev/mqueue")),
        _ => None,
    }
}

fn apply_attrs_and_propagation(mounted: BorrowedFd<'_>, opts: &MountOptions) -> Result<()> {
    if opts.attr_set | opts.attr_clr != 0 {
        set_recursive_attrs(mounted, opts.attr_set, opts.attr_clr)?;
    }
    if !opts.propagation.is_empty() {
        change_mount(&fd_path(mounted), opts.propagation).context("set mount propagation")?;
    }
    Ok(())
}

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) with AT_RECURSIVE on the mount `fd` is the root of.
fn set_recursive_attrs(fd: BorrowedFd<'_>, attr_set: u64, attr_clr: u64) -> Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid C string, attr outlives the call, size matches.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret)
        .map(drop)
        .context("mount_setattr (recursive options)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    fn mount(dest: &str, typ: Option<&str>, options: &[&str]) -> Mount {
        let mut b = MountBuilder::default()
            .destination(dest)
            .source("/src")
            .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        if let Some(t) = typ {
            b = b.typ(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn validate_accepts_a_default_config() {
        let mounts = [
            mount("/proc", Some("proc"), &[]),
            mount("/dev", Some("tmpfs"), &["nosuid", "mode=755"]),
            mount("/sys/fs/cgroup", Some("cgroup"), &["ro"]),
            mount("/etc/hosts", None, &["rbind", "ro"]),
            mount("/data", Some("bind"), &[]),
            mount("/proc/meminfo", Some("fuse"), &["bind"]),
            mount("/proc/sys/kernel/ns_last_pid", None, &["rbind"]),
            mount("/proc", None, &["rbind"]),
            mount("relative/dir", Some("tmpfs"), &[]),
        ];
        validate(&mounts).unwrap();
    }

    #[test]
    fn validate_names_the_failing_field() {
        let cases = [
            (mount("/x", None, &["ro"]), "mounts[1].type: required unless options contain bind or rbind"),
            (
                mount("/proc", Some("tmpfs"), &[]),
                "mounts[1].destination: \"/proc\" cannot be mounted because it is not of type proc",
            ),
            (
                mount("/proc/self/attr", Some("tmpfs"), &[]),
                "mounts[1].destination: \"/proc/self/attr\" cannot be mounted because it is inside /proc",
            ),
            (
                mount("/x/../proc/sys/kernel/core_pattern", None, &["bind"]),
                "mounts[1].destination: \"/proc/sys/kernel/core_pattern\" cannot be mounted because it is inside /proc",
            ),
            (
                mount("/proc/pressure/cpu", None, &["rbind"]),
                "mounts[1].destination: \"/proc/pressure/cpu\" cannot be mounted because it is inside /proc",
            ),
            (
                mount("/x/..", Some("tmpfs"), &[]),
                "mounts[1].destination: mountpoint \"/\" is on the top of rootfs",
            ),
            (
                mount("/data", None, &["rbind", "size=1m"]),
                "mounts[1].options: bind mounts cannot have any filesystem-specific options applied (got \"size=1m\")",
            ),
        ];
        for (bad, want) in cases {
            let err = validate(&[mount("/ok", Some("tmpfs"), &[]), bad]).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        let mut no_source = mount("/data", None, &["bind"]);
        no_source.set_source(None);
        let err = validate(&[no_source]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mounts[0].source: required for a bind mount"
        );
    }

    #[test]
    fn cleans_destinations_lexically() {
        assert_eq!(
            clean_path(Path::new("/a/./b/../../../proc//x")),
            Path::new("/proc/x")
        );
        assert_eq!(clean_path(Path::new("run/x")), Path::new("/run/x"));
        assert!(!clean_path(Path::new("/procfoo")).starts_with("/proc"));
    }
}
