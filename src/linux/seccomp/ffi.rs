//! The few libseccomp 2.5 calls paddock needs, declared by hand (the library is linked
//! statically by build.rs), and a context handle that releases itself.
//!
//! Values are those of /usr/include/seccomp.h (libseccomp 2.5.4).

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use anyhow::{bail, Result};

pub const ACT_KILL_PROCESS: u32 = 0x8000_0000;
pub const ACT_KILL_THREAD: u32 = 0x0000_0000;
pub const ACT_TRAP: u32 = 0x0003_0000;
pub const ACT_NOTIFY: u32 = 0x7fc0_0000;
pub const ACT_LOG: u32 = 0x7ffc_0000;
pub const ACT_ALLOW: u32 = 0x7fff_0000;

pub const fn act_errno(e: u32) -> u32 {
    0x0005_0000 | (e & 0xffff)
}

pub const fn act_trace(v: u32) -> u32 {
    0x7ff0_0000 | (v & 0xffff)
}

// enum scmp_filter_attr
pub const FLTATR_CTL_NNP: c_int = 3;
pub const FLTATR_CTL_TSYNC: c_int = 4;
pub const FLTATR_CTL_LOG: c_int = 6;
pub const FLTATR_CTL_SSB: c_int = 7;
pub const FLTATR_CTL_OPTIMIZE: c_int = 8;
pub const FLTATR_API_SYSRAWRC: c_int = 9;

// enum scmp_compare
pub const CMP_NE: c_int = 1;
pub const CMP_LT: c_int = 2;
pub const CMP_LE: c_int = 3;
pub const CMP_EQ: c_int = 4;
pub const CMP_GE: c_int = 5;
pub const CMP_GT: c_int = 6;
pub const CMP_MASKED_EQ: c_int = 7;

/// `__NR_SCMP_ERROR`: what the resolvers return for a name they do not know.
pub const NR_SCMP_ERROR: c_int = -1;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScmpArgCmp {
    pub arg: c_uint,
    pub op: c_int,
    pub datum_a: u64,
    pub datum_b: u64,
}

extern "C" {
    fn seccomp_init(def_action: u32) -> *mut c_void;
    fn seccomp_release(ctx: *mut c_void);
    fn seccomp_arch_add(ctx: *mut c_void, arch_token: u32) -> c_int;
    fn seccomp_arch_native() -> u32;
    fn seccomp_arch_resolve_name(arch_name: *const c_char) -> u32;
    fn seccomp_syscall_resolve_name(name: *const c_char) -> c_int;
    fn seccomp_syscall_resolve_num_arch(arch_token: u32, num: c_int) -> *mut c_char;
    fn seccomp_rule_add_array(
        ctx: *mut c_void,
        action: u32,
        syscall: c_int,
        arg_cnt: c_uint,
        arg_array: *const ScmpArgCmp,
    ) -> c_int;
    fn seccomp_attr_set(ctx: *mut c_void, attr: c_int, value: u32) -> c_int;
    fn seccomp_load(ctx: *mut c_void) -> c_int;
    fn seccomp_notify_fd(ctx: *mut c_void) -> c_int;
    #[cfg(test)]
    fn seccomp_export_bpf(ctx: *mut c_void, fd: c_int) -> c_int;
}

/// A libseccomp return code (a negative errno) as an error.
fn errno(rc: c_int) -> std::io::Error {
    std::io::Error::from_raw_os_error(-rc)
}

/// The architecture token for a libseccomp name ("x86_64", "aarch64"); None if unknown.
pub fn arch_resolve(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    let token = unsafe { seccomp_arch_resolve_name(c.as_ptr()) };
    (token != 0).then_some(token)
}

pub fn arch_native() -> u32 {
    // SAFETY: no arguments, no side effects.
    unsafe { seccomp_arch_native() }
}

/// The native syscall number for a name; pseudo numbers (< 0) stand for syscalls that
/// exist only on other architectures. None when libseccomp does not know the name.
pub fn syscall_resolve(name: &str) -> Option<c_int> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    let nr = unsafe { seccomp_syscall_resolve_name(c.as_ptr()) };
    (nr != NR_SCMP_ERROR).then_some(nr)
}

/// The name of syscall `nr` on `arch`, if libseccomp knows it.
pub fn syscall_name(arch: u32, nr: c_int) -> Option<String> {
    // SAFETY: plain values in; the result is NULL or a malloc'd string we must free.
    let p = unsafe { seccomp_syscall_resolve_num_arch(arch, nr) };
    if p.is_null() {
        return None;
    }
    // SAFETY: p is a valid NUL-terminated string from libseccomp.
    let name = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: p was allocated by libseccomp with malloc and is not used again.
    unsafe { libc::free(p.cast()) };
    Some(name)
}

/// An owned libseccomp filter context.
#[derive(Debug)]
pub struct Ctx(*mut c_void);

impl Ctx {
    pub fn new(default_action: u32) -> Result<Ctx> {
        // SAFETY: plain value in; NULL on failure.
        let p = unsafe { seccomp_init(default_action) };
        if p.is_null() {
            bail!("seccomp_init: libseccomp rejected default action {default_action:#x}");
        }
        Ok(Ctx(p))
    }

    pub fn attr_set(&mut self, attr: c_int, value: u32) -> std::io::Result<()> {
        // SAFETY: self.0 is a live context.
        let rc = unsafe { seccomp_attr_set(self.0, attr, value) };
        if rc < 0 {
            return Err(errno(rc));
        }
        Ok(())
    }

    /// Adds an architecture; adding one already present (the native one) is fine.
    pub fn arch_add(&mut self, token: u32) -> std::io::Result<()> {
        // SAFETY: self.0 is a live context.
        let rc = unsafe { seccomp_arch_add(self.0, token) };
        if rc < 0 && rc != -libc::EEXIST {
            return Err(errno(rc));
        }
        Ok(())
    }

    pub fn rule_add(&mut self, action: u32, nr: c_int, args: &[ScmpArgCmp]) -> std::io::Result<()> {
        let n = c_uint::try_from(args.len())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: self.0 is a live context; args points to n valid structs, only read.
        let rc = unsafe { seccomp_rule_add_array(self.0, action, nr, n, args.as_ptr()) };
        if rc < 0 {
            return Err(errno(rc));
        }
        Ok(())
    }

    pub fn load(&mut self) -> std::io::Result<()> {
        // SAFETY: self.0 is a live context.
        let rc = unsafe { seccomp_load(self.0) };
        if rc < 0 {
            return Err(errno(rc));
        }
        Ok(())
    }

    /// The listener fd of the loaded filter (owned by the caller from here on).
    pub fn notify_fd(&mut self) -> std::io::Result<c_int> {
        // SAFETY: self.0 is a live context.
        let rc = unsafe { seccomp_notify_fd(self.0) };
        if rc < 0 {
            return Err(errno(rc));
        }
        Ok(rc)
    }

    /// The BPF program as bytes (tests inspect its size).
    #[cfg(test)]
    pub fn export_bpf(&self) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek};
        use std::os::fd::AsRawFd;
        let mut f = tempfile_in_memory()?;
        // SAFETY: self.0 is a live context; the fd is valid for the call.
        let rc = unsafe { seccomp_export_bpf(self.0, f.as_raw_fd()) };
        if rc < 0 {
            return Err(errno(rc));
        }
        let mut out = Vec::new();
        f.rewind()?;
        f.read_to_end(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
fn tempfile_in_memory() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: a valid C string; a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is new and owned by nothing else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: self.0 is a live context, released exactly once. The notify fd lives in
        // libseccomp's global state and is not closed by this.
        unsafe { seccomp_release(self.0) };
    }
}
