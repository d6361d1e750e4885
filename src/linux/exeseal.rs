//! CVE-2019-5736: a container process that reaches our /proc/<pid>/exe must never
//! be able to open the host binary for writing, nor execve it as its own program.
//! Two ways, chosen per command (`for_container`):
//! - usually, the process paddock puts into a container execs the exec tail
//!   (tail/tail.rs) from a sealed memfd once its setup is done, and the tail execs the
//!   program: paddock itself is not re-executed;
//! - when a step after that point needs paddock (a seccomp filter loaded before the
//!   capabilities drop, an LSM label for the next execve, startContainer hooks), the
//!   whole command re-executes paddock from a read-only view of it first: a detached
//!   overlayfs (no copy, no mount in any namespace) whose layers are the binary's
//!   directory and an empty tmpfs (or /dev on kernels that refuse detached layers);
//!   where that is not possible (unprivileged, or a path overlayfs cannot take), a
//!   sealed memfd copy that can be neither written nor resized.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Context, Result};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
/// MFD_EXEC (Linux 6.3): executable even where vm.memfd_noexec defaults to noexec.
const MFD_EXEC: libc::c_uint = 0x10;

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// True when we already run from a sealed memfd or a read-only overlayfs view.
fn running_sealed(exe: &File) -> bool {
    // SAFETY: F_GET_SEALS only queries; it fails with EINVAL on non-memfd files.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        return true;
    }
    // SAFETY: fstatfs/fstatvfs into zeroed structs of the right type.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        let mut vfs: libc::statvfs = std::mem::zeroed();
        libc::fstatfs(exe.as_raw_fd(), &mut fs) == 0
            && fs.f_type as i64 == OVERLAYFS_SUPER_MAGIC
            && libc::fstatvfs(exe.as_raw_fd(), &mut vfs) == 0
            && vfs.f_flag & libc::ST_RDONLY != 0
    }
}

/// The exec tail, built by build.rs from tail/tail.rs.
const TAIL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/paddock-tail"));

/// For a command that puts a process into a container: the sealed exec tail that
/// process is to exec, or None when paddock already runs sealed. With `needs_paddock`
/// (the process needs paddock after the tail's point), re-executes the command from a
/// sealed view of paddock instead; warnings held until now are then left to the
/// re-executed command, which gives them again.
pub fn for_container(needs_paddock: bool) -> Result<Option<OwnedFd>> {
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if running_sealed(&exe) {
        crate::logger::release_warnings();
        return Ok(None);
    }
    if !needs_paddock {
        crate::logger::release_warnings();
        return sealed_memfd(c"paddock-init", |fd| {
            write_all(fd, TAIL).context("write the exec tail into a memfd")?;
            // Unreadable to a container user without DAC capabilities: execve then
            // leaves the tail non-dumpable from its first instruction.
            nix::sys::stat::fchmod(
                fd.as_raw_fd(),
                nix::sys::stat::Mode::from_bits_truncate(0o111),
            )
            .context("chmod the exec tail's memfd")
        })
        .map(Some);
    }
    crate::logger::discard_warnings();
    reexec_sealed(&exe).inspect_err(|_| crate::logger::release_warnings())
}

/// Re-executes the current process from a sealed view of its binary. Returns only on failure.
fn reexec_sealed(exe: &File) -> Result<Option<OwnedFd>> {
    let sealed = match overlay_view() {
        Ok(fd) => fd,
        Err(e) => {
            crate::logger::debug(&format!(
                "overlayfs view of the binary: {e:#}; copying to a memfd"
            ));
            sealed_copy(exe)?
        }
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .context("argument with a NUL byte")?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            CString::new(kv.as_bytes())
        })
        .collect::<std::result::Result<_, _>>()
        .context("environment with a NUL byte")?;
    Err(exec_fd(sealed.as_raw_fd(), &args, &env)).context("re-execute from the sealed copy")
}

/// execveat(fd, "", AT_EMPTY_PATH): runs the file `fd` refers to. Returns only on failure.
pub fn exec_fd(fd: RawFd, args: &[CString], env: &[CString]) -> std::io::Error {
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // SAFETY: NUL-terminated argv/envp arrays that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    std::io::Error::last_os_error()
}

fn sealed_copy(exe: &File) -> Result<OwnedFd> {
    let len = exe.metadata().context("stat /proc/self/exe")?.len();
    sealed_memfd(c"paddock", |memfd| copy_file(exe, memfd, len))
}

/// A memfd that `fill` writes, then sealed against writing and resizing.
fn sealed_memfd(
    name: &std::ffi::CStr,
    fill: impl FnOnce(&OwnedFd) -> Result<()>,
) -> Result<OwnedFd> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a valid name; retried without MFD_EXEC on older kernels.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    // SAFETY: a fresh fd that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    fill(&memfd)?;
    // SAFETY: adding seals to our own memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal memfd");
    }
    Ok(memfd)
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        // SAFETY: write from a valid buffer to our own fd.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

fn copy_file(exe: &File, memfd: &OwnedFd, len: u64) -> Result<()> {
    let mut copied: u64 = 0;
    while copied < len {
        // SAFETY: in-kernel copy between two valid fds.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                (len - copied) as usize,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("copy binary into memfd");
        }
        if n == 0 {
            bail!("copy binary into memfd: short copy");
        }
        copied += n as u64;
    }
    Ok(())
}

/// The running binary opened through a detached, read-only overlayfs whose layers
/// are its own directory and an empty detached tmpfs.
fn overlay_view() -> Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        bail!("{} has no parent directory", exe.display());
    };
    let dir = dir.to_str().context("binary path is not UTF-8")?;
    if dir.contains([':', ',', '\\']) || exe.to_string_lossy().ends_with(" (deleted)") {
        bail!("overlayfs cannot take {}", exe.display());
    }
    let empty = detached_mount("tmpfs", &[])?;
    let lower = format!("{dir}:/proc/self/fd/{}", empty.as_raw_fd());
    // Older kernels (Debian 12's 6.1) take no detached mount as a layer (EINVAL) and
    // no single-layer overlay: there the second layer is /dev, attached and never an
    // ancestor of the binary's directory. Only the binary's name is ever looked up in
    // the view, and the first layer answers it, so the second one's content is moot.
    let overlay = detached_mount("overlay", &[("lowerdir", &lower)]).or_else(|e| {
        if dir == "/" || dir.starts_with("/dev/") {
            return Err(e);
        }
        detached_mount("overlay", &[("lowerdir", &format!("{dir}:/dev"))])
    })?;
    let name = CString::new(name.as_bytes()).context("binary name")?;
    // SAFETY: openat relative to our own mount fd with a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            overlay.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("open the binary in the overlay");
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// fsopen + fsconfig + fsmount: a read-only mount attached to no namespace.
fn detached_mount(fstype: &str, options: &[(&str, &str)]) -> Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
    let ty = CString::new(fstype).context("fs type")?;
    let check = |r: libc::c_long, what: &str| -> Result<libc::c_long> {
        if r < 0 {
            Err(std::io::Error::last_os_error()).with_context(|| format!("{what} {fstype}"))
        } else {
            Ok(r)
        }
    };
    // SAFETY: fsopen with a NUL-terminated type name.
    let fs = check(
        unsafe { libc::syscall(libc::SYS_fsopen, ty.as_ptr(), FSOPEN_CLOEXEC) },
        "fsopen",
    )?;
    // SAFETY: a fresh fd that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    for (key, value) in options {
        let (k, v) = (CString::new(*key)?, CString::new(*value)?);
        // SAFETY: fsconfig with NUL-terminated key and value.
        check(
            unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    FSCONFIG_SET_STRING,
                    k.as_ptr(),
                    v.as_ptr(),
                    0,
                )
            },
            "fsconfig",
        )?;
    }
    // SAFETY: fsconfig create with no key or value.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        },
        "create",
    )?;
    // SAFETY: fsmount of a created filesystem context.
    let mnt = check(
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY,
            )
        },
        "fsmount",
    )?;
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as i32) })
}
