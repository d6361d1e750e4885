//! Device nodes in the container's /dev: the default set, `linux.devices`,
//! the standard symlinks, and /dev/console bound to the pty slave.
//!
//! /dev is resolved inside the rootfs and every node is made relative to a
//! directory fd, so a /dev symlink in the image cannot make us create anything
//! on the host (runc CVE-2026-41579, crun CVE-2026-47766).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd};
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mknodat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::linux::rootfs::bind_fd;
use crate::linux::safepath::{
    create_file_at, fd_path, file_type, mkdir_all_in_root, open_host, open_nofollow_at,
};

/// Always present, mode 0666 root:root (unless the config lists the path).
const DEFAULT_DEVICES: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// (name in /dev, target): created unless something already has the name.
const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Major number of devpts slaves (UNIX98_PTY_SLAVE_MAJOR).
const PTY_SLAVE_MAJOR: u32 = 136;

/// One device node to create.
struct Node<'a> {
    path: &'a Path,
    kind: SFlag,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Checks `linux.devices` for the spec loader: absolute paths under /dev,
/// a node type (c, b, u or p), and device numbers the kernel can represent.
pub fn validate(devices: &[LinuxDevice]) -> Result<()> {
    for (i, d) in devices.iter().enumerate() {
        let path = d.path();
        if !path.is_absolute() {
            bail!("linux.devices[{i}].path: must be an absolute path, got {path:?}");
        }
        let plain = path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !plain || !path.starts_with("/dev") || path == Path::new("/dev") {
            bail!("linux.devices[{i}].path: must be under /dev, got {path:?}");
        }
        if node_kind(d.typ()).is_none() {
            bail!(
                "linux.devices[{i}].type: must be one of c, b, u, p, got {:?}",
                d.typ().as_str()
            );
        }
        if device_numbers(d).is_none() {
            bail!(
                "linux.devices[{i}]: major {} / minor {} out of range",
                d.major(),
                d.minor()
            );
        }
    }
    Ok(())
}

fn node_kind(typ: LinuxDeviceType) -> Option<SFlag> {
    match typ {
        LinuxDeviceType::C | LinuxDeviceType::U => Some(SFlag::S_IFCHR),
        LinuxDeviceType::B => Some(SFlag::S_IFBLK),
        LinuxDeviceType::P => Some(SFlag::S_IFIFO),
        LinuxDeviceType::A => None,
    }
}

/// (major, minor) if they fit the kernel's 12-bit major / 20-bit minor.
fn device_numbers(d: &LinuxDevice) -> Option<(u32, u32)> {
    let major = u32::try_from(d.major()).ok().filter(|m| *m < 1 << 12)?;
    let minor = u32::try_from(d.minor()).ok().filter(|m| *m < 1 << 20)?;
    Some((major, minor))
}

/// Step 4: populates the rootfs's /dev (created if missing) with the default
/// devices, `devices` from the config, the /proc/self/fd symlinks and
/// /dev/ptmx -> pts/ptmx. In a user namespace, where mknod of devices is not
/// allowed, host devices are bind-mounted instead. Needs the host /proc.
pub fn create_default_devices(
    root: BorrowedFd<'_>,
    in_userns: bool,
    devices: &[LinuxDevice],
) -> Result<()> {
    validate(devices)?;
    // Resolved once: every default node, most listed ones and the symlinks go here.
    let dev = mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    let listed = |path: &Path| devices.iter().any(|d| d.path() == path);
    for (path, major, minor) in DEFAULT_DEVICES {
        let path = Path::new(path);
        if listed(path) {
            continue;
        }
        let node = Node {
            path,
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        create_node(root, dev.as_fd(), &node, in_userns)
            .with_context(|| format!("create device {}", path.display()))?;
    }
    for d in devices {
        // validate() above guarantees both.
        let (Some(kind), Some((major, minor))) = (node_kind(d.typ()), device_numbers(d)) else {
            bail!("invalid device {}", d.path().display());
        };
        let node = Node {
            path: d.path(),
            kind,
            major,
            minor,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create_node(root, dev.as_fd(), &node, in_userns)
            .with_context(|| format!("create device {}", d.path().display()))?;
    }
    create_dev_symlinks(dev.as_fd())?;
    if !listed(Path::new("/dev/ptmx")) {
        link_ptmx(dev.as_fd())?;
    }
    Ok(())
}

/// Creates `node` in its parent directory: `dev` (the resolved /dev) when
/// that is the parent, else the parent resolved (and created) in `root`.
fn create_node(
    root: BorrowedFd<'_>,
    dev: BorrowedFd<'_>,
    node: &Node<'_>,
    in_userns: bool,
) -> Result<()> {
    let (Some(parent), Some(name)) = (node.path.parent(), node.path.file_name()) else {
        bail!("not a file path");
    };
    let nested = match parent == Path::new("/dev") {
        true => None,
        false => Some(mkdir_all_in_root(root, parent, 0o755)?),
    };
    let dir = nested.as_ref().map_or(dev, |d| d.as_fd());
    // FIFOs need no privilege; device nodes need CAP_MKNOD in the initial userns.
    if in_userns && node.kind != SFlag::S_IFIFO {
        return bind_host_device(dir, name, node);
    }
    // A FIFO has no device number, whatever major/minor the config gives.
    let rdev = if node.kind == SFlag::S_IFIFO {
        0
    } else {
        libc::makedev(node.major, node.minor)
    };
    mknod_replacing(dir, name, node.kind, rdev)?;
    let (fd, st) = open_nofollow_at(dir, name, OFlag::empty())?;
    if file_type(&st) != node.kind || st.st_rdev != rdev {
        bail!("{name:?} changed after mknod");
    }
    // Through the fd: chmod of /proc/self/fd/N reaches the node itself, and
    // the explicit mode is not reduced by the umask as mknod's was.
    let mode = Mode::from_bits_truncate(node.mode & 0o7777);
    nix::sys::stat::fchmodat(
        None,
        &fd_path(fd.as_fd()),
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .context("chmod")?;
    // SAFETY: the path is a valid C string; fd is an open O_PATH fd.
    let ret = unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            node.uid,
            node.gid,
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop).context("chown")
}

/// mknodat, replacing whatever non-directory already has the name unless it
/// is already the wanted node.
fn mknod_replacing(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: SFlag,
    rdev: libc::dev_t,
) -> Result<()> {
    let dirfd = Some(dir.as_raw_fd());
    match mknodat(dirfd, name, kind, Mode::from_bits_truncate(0o600), rdev) {
        Ok(()) => return Ok(()),
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).context("mknod"),
    }
    let st = fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).context("stat")?;
    if file_type(&st) == kind && st.st_rdev == rdev {
        return Ok(());
    }
    unlinkat(dirfd, name, UnlinkatFlags::NoRemoveDir).context("remove existing file")?;
    mknodat(dirfd, name, kind, Mode::from_bits_truncate(0o600), rdev).context("mknod")
}

/// In a user namespace: an empty file bind-mounted with the host's node,
/// after checking that the host path really is that device.
fn bind_host_device(dir: BorrowedFd<'_>, name: &OsStr, node: &Node<'_>) -> Result<()> {
    let host = open_host(node.path, OFlag::O_PATH)?;
    let st =
        fstat(host.as_raw_fd()).with_context(|| format!("stat host {}", node.path.display()))?;
    if file_type(&st) != node.kind || st.st_rdev != libc::makedev(node.major, node.minor) {
        bail!(
            "host {} is not device {}:{} of the configured type",
            node.path.display(),
            node.major,
            node.minor
        );
    }
    let target = create_file_at(dir, name, 0o600)?;
    bind_fd(host.as_fd(), target.as_fd(), false).context("bind host device")
}

fn create_dev_symlinks(dev: BorrowedFd<'_>) -> Result<()> {
    let core = Path::new("/proc/kcore")
        .exists()
        .then_some(("core", "/proc/kcore"));
    for (name, target) in DEV_SYMLINKS.iter().copied().chain(core) {
        match symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("symlink /dev/{name} -> {target}")),
        }
    }
    Ok(())
}

/// /dev/ptmx must be the container's devpts ptmx, whatever the image had.
fn link_ptmx(dev: BorrowedFd<'_>) -> Result<()> {
    match unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).context("remove /dev/ptmx"),
    }
    symlinkat("pts/ptmx", Some(dev.as_raw_fd()), "ptmx").context("symlink /dev/ptmx -> pts/ptmx")
}

/// Bind-mounts the pty slave onto /dev/console (an empty file created in the
/// rootfs's /dev; a symlink there is replaced, never followed). Needs a
/// procfs at /proc/self/fd (the host's before pivot_root).
pub fn bind_console(root: BorrowedFd<'_>, pty_slave: BorrowedFd<'_>) -> Result<()> {
    let st = fstat(pty_slave.as_raw_fd()).context("stat console pty")?;
    if file_type(&st) != SFlag::S_IFCHR || libc::major(st.st_rdev) != PTY_SLAVE_MAJOR {
        bail!("console: fd is not a pty slave (char {PTY_SLAVE_MAJOR}:N)");
    }
    let dev = mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    let name = OsStr::new("console");
    if let Ok(st) = fstatat(Some(dev.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        if file_type(&st) == SFlag::S_IFLNK {
            unlinkat(Some(dev.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)
                .context("remove /dev/console symlink")?;
        }
    }
    let console = create_file_at(dev.as_fd(), name, 0o600).context("create /dev/console")?;
    bind_fd(pty_slave, console.as_fd(), false).context("bind pty onto /dev/console")
}

/// As runc, once inside the root: stdio that is the host's /dev/null is replaced by
/// the container's own /dev/null, so that no fd of init refers to a host mount
/// (CRIU cannot dump a file on a mount the container does not have).
pub fn reopen_dev_null() -> Result<()> {
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .context("open the container's /dev/null")?;
    // SAFETY: `null` was just opened and is owned here.
    let null = unsafe { std::os::fd::OwnedFd::from_raw_fd(null) };
    if !is_dev_null(&fstat(null.as_raw_fd()).context("stat /dev/null")?) {
        bail!("can't reopen /dev/null: container's /dev/null is invalid");
    }
    for fd in 0..3 {
        let st = fstat(fd).with_context(|| format!("fstat fd {fd}"))?;
        if is_dev_null(&st) {
            nix::unistd::dup2(null.as_raw_fd(), fd).with_context(|| format!("reopen fd {fd}"))?;
        }
    }
    Ok(())
}

fn is_dev_null(st: &nix::sys::stat::FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR
        && st.st_rdev == libc::makedev(1, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceBuilder;

    fn device(path: &str, typ: LinuxDeviceType, major: i64) -> LinuxDevice {
        LinuxDeviceBuilder::default()
            .path(path)
            .typ(typ)
            .major(major)
            .minor(1)
            .build()
            .unwrap()
    }

    #[test]
    fn accepts_devices_under_dev() {
        let ok = [
            device("/dev/fuse", LinuxDeviceType::C, 10),
            device("/dev/net/tun", LinuxDeviceType::U, 10),
            device("/dev/sda", LinuxDeviceType::B, 8),
            device("/dev/fifo", LinuxDeviceType::P, 0),
        ];
        validate(&ok).unwrap();
    }

    #[test]
    fn rejects_bad_devices_naming_the_field() {
        let cases = [
            (
                device("dev/null", LinuxDeviceType::C, 1),
                "linux.devices[0].path: must be an absolute path, got \"dev/null\"",
            ),
            (
                device("/etc/x", LinuxDeviceType::C, 1),
                "linux.devices[0].path: must be under /dev, got \"/etc/x\"",
            ),
            (
                device("/dev/../etc/x", LinuxDeviceType::C, 1),
                "linux.devices[0].path: must be under /dev, got \"/dev/../etc/x\"",
            ),
            (
                device("/dev", LinuxDeviceType::C, 1),
                "linux.devices[0].path: must be under /dev, got \"/dev\"",
            ),
            (
                device("/devices", LinuxDeviceType::C, 1),
                "linux.devices[0].path: must be under /dev, got \"/devices\"",
            ),
            (
                device("/dev/all", LinuxDeviceType::A, 1),
                "linux.devices[0].type: must be one of c, b, u, p, got \"a\"",
            ),
            (
                device("/dev/neg", LinuxDeviceType::C, -1),
                "linux.devices[0]: major -1 / minor 1 out of range",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(validate(&[d]).unwrap_err().to_string(), want);
        }
    }
}
