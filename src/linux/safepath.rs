//! Path resolution confined to the container rootfs.
//!
//! The image is hostile: any component of a path inside it may be a symlink
//! (absolute or full of `..`) aimed at the host. Lookups go through `openat2`
//! with `RESOLVE_IN_ROOT`, so the kernel keeps them inside the rootfs. Creating
//! a missing last component needs one more step: `mkdirat`/`mknodat` in the
//! parent the kernel resolved, then an `O_NOFOLLOW` open of the new name. Any
//! other case (missing parents, a dangling symlink, no openat2) takes a
//! userspace walk (the kernel cannot create through a dangling symlink); that
//! walk moves from directory fd to directory fd with `O_NOFOLLOW`, keeps `..`
//! on a stack of fds and restarts absolute symlinks at the rootfs, so it never
//! leaves the rootfs either.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, mknodat, FileStat, Mode, SFlag};

/// `struct open_how` from linux/openat2.h (libc's copy is `#[non_exhaustive]`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;
/// Same limit as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;
/// Upper bound on walk steps, so a racing attacker cannot keep us spinning.
const MAX_WALK_STEPS: usize = 4096;
/// openat2 returns EAGAIN for scoped lookups when a rename races with them.
const OPENAT2_RETRIES: usize = 64;

/// Opens `path` (absolute or relative, always interpreted inside `root`).
/// Symlinks are followed but can never leave `root`; magic links are refused.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: libc::c_int) -> Result<OwnedFd> {
    openat2_in_root(root, path, flags)
        .with_context(|| format!("open {} inside the rootfs", path.display()))
}

/// Resolves `path` inside `root`, creating missing directories (`mode`, before
/// umask) one at a time, and returns an `O_PATH` fd of the final directory.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd> {
    if let Some(fd) = resolve_fast(root, path, mode, Leaf::Dir) {
        return Ok(fd);
    }
    walk_creating(root, path, mode, Leaf::Dir)
        .with_context(|| format!("create directory {} inside the rootfs", path.display()))
}

/// Resolves `path` inside `root` like [`mkdir_all_in_root`], but the last
/// component is an (empty) file: created if missing, reused if it exists and is
/// not a directory. Returns an `O_PATH` fd of it.
pub fn create_file_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd> {
    if let Some(fd) = resolve_fast(root, path, mode, Leaf::File) {
        return Ok(fd);
    }
    walk_creating(root, path, mode, Leaf::File)
        .with_context(|| format!("create file {} inside the rootfs", path.display()))
}

/// The magic-link path that names `fd` through the (host) procfs.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens a host path (from the trusted config, e.g. a bind source) with
/// `O_CLOEXEC` added; symlinks resolve as the host sees them.
pub fn open_host(path: &Path, flags: OFlag) -> Result<OwnedFd> {
    let raw = nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// [`open_in_root`] for paths that may be missing: `None` when they are. No
/// error value is built for that case; it is the common one for masked paths.
pub fn open_if_exists_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
) -> Result<Option<OwnedFd>> {
    match openat2_in_root(root, path, flags) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("open {} inside the rootfs", path.display())),
    }
}

/// Creates the empty file `name` in `dir` unless it exists, without following
/// a symlink, and returns an `O_PATH` fd of it. An existing symlink or
/// directory is an error; other existing files are reused.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> Result<OwnedFd> {
    let mode = Mode::from_bits_truncate(mode);
    match mknodat(Some(dir.as_raw_fd()), name, SFlag::S_IFREG, mode, 0) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("create file {name:?}")),
    }
    let (fd, st) = open_nofollow_at(dir, name, OFlag::empty())?;
    match file_type(&st) {
        SFlag::S_IFLNK => bail!("{name:?} is a symlink"),
        SFlag::S_IFDIR => bail!("{name:?} is a directory"),
        _ => Ok(fd),
    }
}

/// Opens `name` in `dir` with `O_PATH|O_NOFOLLOW` and returns its stat.
pub fn open_nofollow_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    extra: OFlag,
) -> Result<(OwnedFd, FileStat)> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | extra;
    let raw = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, Mode::empty())
        .with_context(|| format!("open {name:?}"))?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let st = fstat(fd.as_raw_fd()).with_context(|| format!("stat {name:?}"))?;
    Ok((fd, st))
}

/// The `S_IFMT` part of a stat's mode.
pub fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT)
}

/// openat2(2) with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, retried on EAGAIN.
fn openat2_in_root(dir: BorrowedFd<'_>, path: &Path, flags: libc::c_int) -> nix::Result<OwnedFd> {
    let bytes = path.as_os_str().as_bytes();
    let bytes = if bytes.is_empty() { b"." } else { bytes };
    let cpath = CString::new(bytes).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    for _ in 0..OPENAT2_RETRIES {
        // SAFETY: cpath and how outlive the call; the size matches the struct.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                cpath.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            // SAFETY: the kernel just returned this fd and nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

#[derive(Clone, Copy, PartialEq)]
enum Leaf {
    Dir,
    File,
}

/// Splits a path into its names, dropping empty and `.` components.
fn split_components(path: &Path) -> VecDeque<OsString> {
    path.as_os_str()
        .as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

/// The kernel's scoped lookup in place of the walk for the common cases: the
/// target exists, or only its last component is missing (it is then created in
/// the parent the kernel resolved, and opened without following a symlink).
/// `None` sends everything else (a missing parent, a dangling or magic link,
/// a file where a directory is wanted, no openat2) to the walk, which decides.
fn resolve_fast(root: BorrowedFd<'_>, path: &Path, mode: u32, leaf: Leaf) -> Option<OwnedFd> {
    let flags = match leaf {
        Leaf::Dir => libc::O_PATH | libc::O_DIRECTORY,
        Leaf::File => libc::O_PATH,
    };
    match openat2_in_root(root, path, flags) {
        // O_DIRECTORY checked a directory; a file may be anything but one
        // (the walk reuses any existing non-directory the path leads to).
        Ok(fd) if leaf == Leaf::Dir => return Some(fd),
        Ok(fd) => {
            let st = fstat(fd.as_raw_fd()).ok()?;
            return (file_type(&st) != SFlag::S_IFDIR).then_some(fd);
        }
        Err(Errno::ENOENT) => {}
        Err(_) => return None,
    }
    let mut names = split_components(path);
    let name = names.pop_back().filter(|n| n != "..")?;
    let parent = match names.is_empty() {
        true => None,
        false => {
            let parent = names.into_iter().collect::<Vec<_>>().join(OsStr::new("/"));
            let flags = libc::O_PATH | libc::O_DIRECTORY;
            Some(openat2_in_root(root, Path::new(&parent), flags).ok()?)
        }
    };
    let dir = parent.as_ref().map_or(root, |p| p.as_fd());
    match leaf {
        Leaf::File => create_file_at(dir, &name, mode).ok(),
        Leaf::Dir => {
            let made = mkdirat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                Mode::from_bits_truncate(mode),
            );
            if !matches!(made, Ok(()) | Err(Errno::EEXIST)) {
                return None;
            }
            // O_NOFOLLOW|O_DIRECTORY: only a real directory opens, never a symlink.
            openat_owned(dir, &name, OFlag::O_PATH | OFlag::O_DIRECTORY).ok()
        }
    }
}

/// The userspace walk behind [`mkdir_all_in_root`] and [`create_file_in_root`].
/// `dirs` holds an fd per directory entered, `dirs[0]` being the rootfs, so `..`
/// pops (and stops at the rootfs) and an absolute symlink truncates to it.
/// Mode of the intermediate directories created on the way to a target.
const DIR_MODE: u32 = 0o755;

fn walk_creating(root: BorrowedFd<'_>, path: &Path, mode: u32, leaf: Leaf) -> Result<OwnedFd> {
    let mut dirs = vec![root.try_clone_to_owned().context("dup rootfs fd")?];
    let mut todo = split_components(path);
    let mut symlinks = 0;
    for _ in 0..MAX_WALK_STEPS {
        let Some(name) = todo.pop_front() else {
            return match leaf {
                Leaf::Dir => dirs.pop().ok_or_else(|| anyhow!("empty directory stack")),
                Leaf::File => bail!("path names a directory"),
            };
        };
        if name == ".." {
            if dirs.len() > 1 {
                dirs.pop();
            }
            continue;
        }
        let is_last = todo.is_empty();
        let dir = dirs
            .last()
            .ok_or_else(|| anyhow!("empty directory stack"))?;
        let st = match fstatat(
            Some(dir.as_raw_fd()),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => {
                let as_file = is_last && leaf == Leaf::File;
                // `mode` is the leaf's; directories on the way are ordinary 0755 ones.
                let m = if as_file || (is_last && leaf == Leaf::Dir) {
                    mode
                } else {
                    DIR_MODE
                };
                create_missing(dir, &name, m, as_file)?;
                // Look again: whatever is there now goes through the checks below.
                todo.push_front(name);
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("stat {name:?}")),
        };
        match file_type(&st) {
            SFlag::S_IFLNK => {
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(Errno::ELOOP).context("too many symlinks");
                }
                let target = readlinkat(Some(dir.as_raw_fd()), name.as_os_str())
                    .with_context(|| format!("readlink {name:?}"))?;
                if target.as_bytes().starts_with(b"/") {
                    dirs.truncate(1);
                }
                for comp in split_components(Path::new(&target)).into_iter().rev() {
                    todo.push_front(comp);
                }
            }
            SFlag::S_IFDIR => {
                let (fd, st) = open_nofollow_at(dir.as_fd(), &name, OFlag::O_DIRECTORY)?;
                if file_type(&st) != SFlag::S_IFDIR {
                    bail!("{name:?} changed while resolving");
                }
                dirs.push(fd);
            }
            _ if is_last && leaf == Leaf::File => {
                return create_file_at(dir.as_fd(), &name, mode);
            }
            _ => {
                return Err(Errno::ENOTDIR).with_context(|| format!("{name:?} is not a directory"))
            }
        }
    }
    Err(Errno::ELOOP).context("path resolution did not settle")
}

fn create_missing(dir: &OwnedFd, name: &OsStr, mode: u32, as_file: bool) -> Result<()> {
    let mode = Mode::from_bits_truncate(mode);
    let res = if as_file {
        mknodat(Some(dir.as_raw_fd()), name, SFlag::S_IFREG, mode, 0)
    } else {
        mkdirat(Some(dir.as_raw_fd()), name, mode)
    };
    match res {
        // EEXIST: created concurrently; the caller looks again.
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create {name:?}")),
    }
}

/// Deepest directory nesting [`copy_dir_contents`] follows.
const MAX_COPY_DEPTH: usize = 128;

/// Copies what directory `src` (a readable fd) holds into directory `dst`, as
/// tmpcopyup does: directories, regular files, symlinks, FIFOs and device
/// nodes with their mode and owner (sockets are skipped). Nothing is followed:
/// every entry is opened relative to its parent with `O_NOFOLLOW`.
pub fn copy_dir_contents(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<()> {
    copy_tree(src, dst, 0)
}

fn copy_tree(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, depth: usize) -> Result<()> {
    if depth > MAX_COPY_DEPTH {
        bail!("directories nested deeper than {MAX_COPY_DEPTH}");
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = nix::dir::Dir::openat(Some(src.as_raw_fd()), ".", flags, Mode::empty())
        .context("read directory")?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let name = entry
            .context("read directory")?
            .file_name()
            .to_bytes()
            .to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    for name in names {
        copy_entry(src, dst, &name, depth).with_context(|| format!("copy {name:?}"))?;
    }
    Ok(())
}

fn copy_entry(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, name: &OsStr, depth: usize) -> Result<()> {
    let st = fstatat(Some(src.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).context("stat")?;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let kind = file_type(&st);
    match kind {
        SFlag::S_IFDIR => {
            mkdirat(Some(dst.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
                .context("mkdir")?;
            let from = openat_owned(src, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
            let to = openat_owned(dst, name, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            copy_tree(from.as_fd(), to.as_fd(), depth + 1)?;
        }
        SFlag::S_IFREG => {
            let mut from = std::fs::File::from(openat_owned(src, name, OFlag::O_RDONLY)?);
            let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
            let raw = nix::fcntl::openat(
                Some(dst.as_raw_fd()),
                name,
                create | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .context("create")?;
            // SAFETY: openat just returned this fd and nothing else owns it.
            let mut to = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
            std::io::copy(&mut from, &mut to).context("copy content")?;
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(Some(src.as_raw_fd()), name).context("readlink")?;
            nix::unistd::symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name)
                .context("symlink")?;
        }
        SFlag::S_IFIFO | SFlag::S_IFCHR | SFlag::S_IFBLK => {
            mknodat(Some(dst.as_raw_fd()), name, kind, mode, st.st_rdev).context("mknod")?;
        }
        _ => return Ok(()),
    }
    nix::unistd::fchownat(
        Some(dst.as_raw_fd()),
        name,
        Some(st.st_uid.into()),
        Some(st.st_gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .context("chown")?;
    if kind != SFlag::S_IFLNK {
        // After chown, which clears set-id bits.
        nix::sys::stat::fchmodat(
            Some(dst.as_raw_fd()),
            name,
            mode,
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .context("chmod")?;
    }
    let times = [
        nix::sys::time::TimeSpec::new(st.st_atime, st.st_atime_nsec),
        nix::sys::time::TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    ];
    nix::sys::stat::utimensat(
        Some(dst.as_raw_fd()),
        name,
        &times[0],
        &times[1],
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .context("set times")?;
    Ok(())
}

fn openat_owned(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> Result<OwnedFd> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let raw = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, Mode::empty())
        .with_context(|| format!("open {name:?}"))?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn split_drops_empty_and_dot() {
        let parts: Vec<_> = split_components(Path::new("//a/./b/../c/")).into();
        assert_eq!(parts, vec!["a", "b", "..", "c"]);
    }

    #[test]
    fn fd_path_names_proc_self_fd() {
        let file = std::fs::File::open("/").unwrap();
        let fd = file.as_fd();
        assert_eq!(
            fd_path(fd),
            PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        );
    }

    /// A scratch dir holding `root/` and `outside/`, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("paddock-safepath-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("root")).unwrap();
            std::fs::create_dir_all(dir.join("outside")).unwrap();
            Scratch(dir)
        }
        fn root(&self) -> OwnedFd {
            std::fs::File::open(self.0.join("root")).unwrap().into()
        }
        fn outside_is_empty(&self) -> bool {
            std::fs::read_dir(self.0.join("outside"))
                .unwrap()
                .next()
                .is_none()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn mkdir_all_follows_escaping_symlinks_inside_root() {
        let s = Scratch::new("mkdir");
        let outside = s.0.join("outside");
        std::os::unix::fs::symlink("../../../outside", s.0.join("root/rel")).unwrap();
        std::os::unix::fs::symlink(&outside, s.0.join("root/abs")).unwrap();
        let root = s.root();
        mkdir_all_in_root(root.as_fd(), Path::new("/rel/sub"), 0o755).unwrap();
        mkdir_all_in_root(root.as_fd(), Path::new("abs/x/../y"), 0o755).unwrap();
        assert!(s.outside_is_empty());
        assert!(s.0.join("root/outside/sub").is_dir());
        assert!(s
            .0
            .join("root")
            .join(outside.strip_prefix("/").unwrap())
            .join("y")
            .is_dir());
    }

    #[test]
    fn create_file_follows_dangling_symlink_chain_inside_root() {
        let s = Scratch::new("file");
        std::fs::create_dir(s.0.join("root/etc")).unwrap();
        std::os::unix::fs::symlink("/jump/baz/hosts", s.0.join("root/etc/hosts")).unwrap();
        std::os::unix::fs::symlink("/tmp/foo/bar", s.0.join("root/jump")).unwrap();
        let root = s.root();
        let fd = create_file_in_root(root.as_fd(), Path::new("/etc/hosts"), 0o644).unwrap();
        let st = fstat(fd.as_raw_fd()).unwrap();
        assert_eq!(file_type(&st), SFlag::S_IFREG);
        assert!(s.0.join("root/tmp/foo/bar/baz/hosts").is_file());
        // Now the path opens through the kernel's scoped lookup too.
        open_in_root(root.as_fd(), Path::new("/etc/hosts"), libc::O_PATH).unwrap();
    }

    #[test]
    fn missing_paths_are_none_even_through_symlinks_to_the_host() {
        let s = Scratch::new("open");
        std::os::unix::fs::symlink("/", s.0.join("root/up")).unwrap();
        let root = s.root();
        let fd = open_if_exists_in_root(root.as_fd(), Path::new("/up/outside"), libc::O_PATH);
        assert!(fd.unwrap().is_none());
    }

    #[test]
    fn existing_and_half_missing_paths_resolve_inside_root() {
        let s = Scratch::new("fast");
        let outside = s.0.join("outside");
        std::fs::create_dir(s.0.join("root/dev")).unwrap();
        std::os::unix::fs::symlink(&outside, s.0.join("root/host")).unwrap();
        std::os::unix::fs::symlink("../../outside", s.0.join("root/dev/up")).unwrap();
        let root = s.root();
        let dev = mkdir_all_in_root(root.as_fd(), Path::new("/dev"), 0o755).unwrap();
        let st = fstat(dev.as_raw_fd()).unwrap();
        assert_eq!(
            st.st_ino,
            std::fs::metadata(s.0.join("root/dev")).unwrap().ino()
        );
        // Only the last component is missing: created in the resolved parent.
        mkdir_all_in_root(root.as_fd(), Path::new("/host/pts"), 0o700).unwrap();
        create_file_in_root(root.as_fd(), Path::new("/dev/up/file"), 0o600).unwrap();
        let created = s.0.join("root").join(outside.strip_prefix("/").unwrap());
        assert!(created.join("pts").is_dir());
        assert!(s.0.join("root/outside/file").is_file());
        assert!(s.outside_is_empty());
        // A dangling symlink as the leaf is followed (inside the root) by the walk.
        std::os::unix::fs::symlink("/made/here", s.0.join("root/dev/link")).unwrap();
        mkdir_all_in_root(root.as_fd(), Path::new("/dev/link"), 0o755).unwrap();
        assert!(s.0.join("root/made/here").is_dir());
        // A file where a directory is, and a directory where a file is, fail.
        assert!(create_file_in_root(root.as_fd(), Path::new("/dev"), 0o600).is_err());
        assert!(mkdir_all_in_root(root.as_fd(), Path::new("/outside/file"), 0o755).is_err());
        assert!(s.outside_is_empty());
    }

    #[test]
    fn create_file_at_refuses_symlinks() {
        let s = Scratch::new("nofollow");
        std::os::unix::fs::symlink(s.0.join("outside/x"), s.0.join("root/console")).unwrap();
        let root = s.root();
        assert!(create_file_at(root.as_fd(), OsStr::new("console"), 0o600).is_err());
        assert!(s.outside_is_empty());
    }
}
