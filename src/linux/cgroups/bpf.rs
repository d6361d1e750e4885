//! The little of eBPF that the v2 device controller needs: an assembler for
//! the handful of instructions a device program uses, and the bpf(2) calls to
//! load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to a cgroup in
//! place of the ones already there. Numbers are the kernel's uapi (linux/bpf.h).

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{anyhow, Context, Result};

// bpf(2) commands.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
/// Kernel 5.6+: swap one attached program for another in a single step.
const BPF_F_REPLACE: u32 = 4;

// Instruction classes, sizes, modes, operations and sources.
const LDX: u8 = 0x01;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const MEM: u8 = 0x60;
const W: u8 = 0x00;
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
const JEQ: u8 = 0x10;
const JNE: u8 = 0x50;
const EXIT: u8 = 0x90;
const K: u8 = 0x00;
const X: u8 = 0x08;

/// Registers by number: R0 is the return value, R1 the context on entry.
pub type Reg = u8;

/// One eBPF instruction (struct bpf_insn). `off` of a jump counts
/// instructions from the one after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: Reg,
    pub src: Reg,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// dst = *(u32 *)(src + off)
    pub fn load_u32(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(LDX | MEM | W, dst, src, off, 0)
    }

    /// dst = (u32)dst & imm
    pub fn and32(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU | AND | K, dst, 0, 0, imm)
    }

    /// dst = (u32)dst >> imm
    pub fn rsh32(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU | RSH | K, dst, 0, 0, imm)
    }

    /// dst = (u32)imm, the upper half cleared.
    pub fn mov32(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU | MOV | K, dst, 0, 0, imm)
    }

    /// dst = (u32)src, the upper half cleared.
    pub fn mov32_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(ALU | MOV | X, dst, src, 0, 0)
    }

    /// if dst != (s64)imm goto +off
    pub fn jne(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(JMP | JNE | K, dst, 0, off, imm)
    }

    /// if dst != src goto +off
    pub fn jne_reg(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(JMP | JNE | X, dst, src, off, 0)
    }

    /// if dst == (s64)imm goto +off
    pub fn jeq(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(JMP | JEQ | K, dst, 0, off, imm)
    }

    pub fn exit() -> Insn {
        Insn::new(JMP | EXIT, 0, 0, 0, 0)
    }

    /// A conditional jump (whose `off` a block's layout sets).
    pub fn is_cond_jump(&self) -> bool {
        self.code & 0x07 == JMP && self.code & 0xf0 != EXIT
    }

    fn raw(&self) -> RawInsn {
        RawInsn {
            code: self.code,
            regs: (self.dst & 0x0f) | (self.src << 4),
            off: self.off,
            imm: self.imm,
        }
    }
}

/// struct bpf_insn: the register nibbles are dst low, src high (little endian).
#[repr(C)]
struct RawInsn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// The BPF_PROG_LOAD part of union bpf_attr, up to expected_attach_type.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// BPF_PROG_QUERY, up to prog_cnt.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised bpf_attr prefix of the size given;
    // pointers inside it point at buffers the caller keeps alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us alone.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// Loads a cgroup device program. Where the kernel refuses it, the load is
/// repeated with the verifier's log, whose last line (the reason) goes into
/// the error.
pub fn load_device_program(insns: &[Insn], license: &str, name: &str) -> Result<OwnedFd> {
    let raw: Vec<RawInsn> = insns.iter().map(Insn::raw).collect();
    let license = CString::new(license).context("bpf license")?;
    let attr = |log: &mut [u8]| {
        let mut a = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: raw.len() as u32,
            insns: raw.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..Default::default()
        };
        for (d, s) in a.prog_name.iter_mut().zip(name.bytes().take(15)) {
            *d = s;
        }
        if !log.is_empty() {
            a.log_level = 1;
            a.log_size = log.len() as u32;
            a.log_buf = log.as_mut_ptr() as u64;
        }
        a
    };
    let first = match with_memlock_raised(|| bpf(BPF_PROG_LOAD, &mut attr(&mut []))) {
        Ok(fd) => return Ok(fd_from(fd)),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 16];
    if let Ok(fd) = with_memlock_raised(|| bpf(BPF_PROG_LOAD, &mut attr(&mut log))) {
        return Ok(fd_from(fd));
    }
    let text = String::from_utf8_lossy(&log);
    let last = text
        .trim_end_matches('\0')
        .lines()
        .map(str::trim)
        // The verifier ends with a "processed N insns" summary; the reason is before it.
        .rfind(|l| !l.is_empty() && !l.starts_with("processed "));
    Err(match last {
        Some(line) => anyhow!("{first} (verifier: {line})"),
        None => anyhow!(first),
    })
    .context("the kernel refused it (BPF_PROG_LOAD)")
}

/// Kernels before 5.11 charge programs to RLIMIT_MEMLOCK; a low limit gives
/// EPERM. The limit is raised for the one call and restored at once, since
/// this process's limits are inherited by the container's init.
fn with_memlock_raised<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let first = f();
    if !matches!(&first, Err(e) if e.raw_os_error() == Some(libc::EPERM)) {
        return first;
    }
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain rlimit calls on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } != 0 {
        return first;
    }
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } != 0 {
        return first;
    }
    let r = f();
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
    r
}

/// The ids of the device programs attached to the cgroup `dir` itself.
fn attached_ids(dir: RawFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    for _ in 0..10 {
        let mut q = QueryAttr {
            target_fd: dir as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut q) {
            Ok(_) => {
                ids.truncate(q.prog_cnt as usize);
                return Ok(ids);
            }
            // The count was too small: the kernel says how many there are.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids.resize(q.prog_cnt.max(1) as usize * 2, 0);
            }
            Err(e) => return Err(e).context("BPF_PROG_QUERY (BPF_CGROUP_DEVICE)"),
        }
    }
    Err(anyhow!(
        "BPF_PROG_QUERY (BPF_CGROUP_DEVICE): the list of programs kept changing"
    ))
}

/// The programs attached to `dir`, opened. One that this process may not open
/// (an LSM policy on another manager's program) is left alone, as runc does:
/// it can only deny more.
fn attached(dir: RawFd) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    for id in attached_ids(dir)? {
        let mut a = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        match bpf(BPF_PROG_GET_FD_BY_ID, &mut a) {
            Ok(fd) => fds.push(fd_from(fd)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {}
            // Detached meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).context(format!("BPF_PROG_GET_FD_BY_ID {id}")),
        }
    }
    Ok(fds)
}

fn attach(dir: RawFd, prog: &OwnedFd, replace: Option<&OwnedFd>) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: dir as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let Some(old) = replace {
        a.attach_flags |= BPF_F_REPLACE;
        a.replace_bpf_fd = old.as_raw_fd() as u32;
    }
    bpf(BPF_PROG_ATTACH, &mut a).map(drop)
}

fn detach(dir: RawFd, prog: &OwnedFd) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: dir as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut a).map(drop)
}

/// Attaches `prog` to the cgroup `dir` (BPF_F_ALLOW_MULTI) in place of the
/// device programs already attached there, with no moment where the cgroup
/// has none of them: one old program is swapped in a single step
/// (BPF_F_REPLACE); otherwise the new one goes on first, then the old ones off.
pub fn attach_replacing(dir: RawFd, prog: &OwnedFd) -> Result<()> {
    let old = attached(dir)?;
    let what = "BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)";
    if let [one] = old.as_slice() {
        match attach(dir, prog, Some(one)) {
            Ok(()) => return Ok(()),
            // EINVAL: a kernel without BPF_F_REPLACE; do it in two steps.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e).context(format!("{what} replacing the old program")),
        }
    }
    attach(dir, prog, None).context(what)?;
    for p in &old {
        detach(dir, p).context("BPF_PROG_DETACH (BPF_CGROUP_DEVICE) of the old program")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_uapi() {
        let r = Insn::load_u32(2, 1, 4).raw();
        assert_eq!((r.code, r.regs, r.off, r.imm), (0x61, 0x12, 4, 0));
        let r = Insn::mov32_reg(1, 3).raw();
        assert_eq!((r.code, r.regs), (0xbc, 0x31));
        assert_eq!(Insn::and32(2, 0xffff).code, 0x54);
        assert_eq!(Insn::rsh32(3, 16).code, 0x74);
        assert_eq!(Insn::mov32(0, 1).code, 0xb4);
        assert_eq!(Insn::jne(4, 1, 3).code, 0x55);
        assert_eq!(Insn::jne_reg(1, 3, 3).code, 0x5d);
        assert_eq!(Insn::jeq(1, 0, 3).code, 0x15);
        assert_eq!(Insn::exit().code, 0x95);
        assert_eq!(size_of::<RawInsn>(), 8);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert!(Insn::jne(4, 1, 3).is_cond_jump());
        assert!(!Insn::exit().is_cond_jump());
        assert!(!Insn::mov32(0, 1).is_cond_jump());
    }

    /// A refused program's error carries the verifier's last line.
    #[test]
    fn a_refused_program_names_the_verifier_line() {
        let e = load_device_program(&[Insn::exit()], "Apache", "paddock_test").unwrap_err();
        let e = format!("{e:#}");
        if e.contains("Operation not permitted") {
            eprintln!("skipped: this process may not load bpf programs");
            return;
        }
        assert!(
            e.contains("BPF_PROG_LOAD") && e.contains("verifier: "),
            "{e}"
        );
        assert!(e.contains("R0"), "{e}");
    }
}
