//! CVE-2019-5736: a container process that reaches our /proc/<pid>/exe must never
//! be able to open the host binary for writing. Commands that put a process into
//! a container first re-execute paddock from a read-only view of it: a detached
//! overlayfs (no copy, no mount in any namespace) whose layers are the binary's
//! directory and an empty tmpfs (or /dev on kernels that refuse detached layers);
//! where that is not possible (unprivileged, or a
//! path overlayfs cannot take), a sealed memfd copy that can be neither written
//! nor resized.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// Re-executes the current process from a sealed memfd copy of its binary, unless
/// it already runs from one. Returns only when nothing needed doing.
pub fn ensure_sealed() -> Result<()> {
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if running_sealed(&exe) {
        return Ok(());
    }
    let sealed = match overlay_view() {
        Ok(fd) => fd,
        Err(e) => {
            crate::logger::debug(&format!(
                "overlayfs view of the binary: {e:#}; copying to a memfd"
            ));
            sealed_copy(&exe)?
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
            sealed.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error()).context("re-execute from the sealed copy")
}

fn sealed_copy(exe: &File) -> Result<OwnedFd> {
    let name = c"paddock";
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
    let len = exe.metadata().context("stat /proc/self/exe")?.len();
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
    // SAFETY: adding seals to our own memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal memfd");
    }
    Ok(memfd)
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
