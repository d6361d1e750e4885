//! paddock's exec tail: the program a container process becomes right before its own.
//!
//! A container process must never execve its program while /proc/self/exe is the
//! host's paddock binary (CVE-2019-5736: a program that is /proc/self/exe would run
//! that binary, and its file could be reopened for writing). Instead of re-executing
//! all of paddock from a sealed copy, init and exec processes do their setup as
//! paddock and then execve this tiny program from a sealed memfd; it does the few
//! steps left and execs the container's program. No libc: it starts in a fraction of
//! the time glibc's startup takes, and it is built by build.rs with `rustc` alone.
//!
//! argv: NAME CHANNEL FIFO PATH ARG0 [ARGS...]; envp: the program's.
//! - CHANNEL: the SOCK_SEQPACKET fd to the paddock parent; it gets `"Ready"` before the
//!   start wait (only with a FIFO) and `{"Error":{"message":...}}` if a step fails.
//! - FIFO: the exec fifo to read one byte from (create/run), or `-` (exec).
//! - PATH: the program, already resolved inside the container; ARG0...: its argv.
//!
//! Both fds are close-on-exec by the time the program runs. paddock uses the tail
//! only for processes without a seccomp filter (process/tail.rs says why).

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

const SYS_READ: usize = 0;
const SYS_WRITE: usize = 1;
const SYS_SENDTO: usize = 44;
const SYS_EXECVE: usize = 59;
const SYS_FCNTL: usize = 72;
const SYS_PRCTL: usize = 157;
const SYS_EXIT_GROUP: usize = 231;

const EINTR: isize = 4;
const F_SETFD: usize = 2;
const FD_CLOEXEC: usize = 1;
const MSG_NOSIGNAL: usize = 0x4000;
const PR_SET_DUMPABLE: usize = 4;

/// One error message, JSON-escaped into the channel's Error form.
static mut MESSAGE: [u8; 8192] = [0; 8192];

global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call tail_main",
    "ud2",
);

unsafe fn syscall(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    asm!(
        "syscall",
        inlateout("rax") n as isize => ret,
        in("rdi") a,
        in("rsi") b,
        in("rdx") c,
        in("r10") d,
        in("r8") e,
        in("r9") f,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    ret
}

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit_group does not return.
        unsafe { syscall(SYS_EXIT_GROUP, code, 0, 0, 0, 0, 0) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(255)
}

/// libcore is built with unwind tables that name this symbol; with panic=abort
/// nothing ever calls it.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

// The compiler may turn copies and fills into calls to these; nothing else provides
// them here. Written with `rep` string instructions, so that they cannot be turned
// into calls to themselves.

/// # Safety
/// As C's memcpy: `n` bytes, valid and not overlapping.
#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") n => _,
        options(nostack, preserves_flags));
    dst
}

/// # Safety
/// As C's memmove: `n` bytes, valid; they may overlap.
#[no_mangle]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize) + n {
        return memcpy(dst, src, n);
    }
    // Overlapping with dst above src: copy backwards.
    asm!("std", "rep movsb", "cld",
        inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
        inout("rcx") n => _, options(nostack));
    dst
}

/// # Safety
/// As C's memset: `n` bytes, valid.
#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    asm!("rep stosb", inout("rdi") dst => _, inout("rcx") n => _, in("al") c as u8,
        options(nostack, preserves_flags));
    dst
}

/// # Safety
/// As C's memcmp: `n` bytes of each, valid.
#[no_mangle]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        let (x, y) = (
            core::ptr::read_volatile(a.add(i)),
            core::ptr::read_volatile(b.add(i)),
        );
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// # Safety
/// As memcmp.
#[no_mangle]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}

/// The entry point: `sp` points at argc, then argv, NULL, envp, NULL.
///
/// # Safety
/// Called once by `_start` with the initial stack pointer the kernel set up.
#[no_mangle]
unsafe extern "C" fn tail_main(sp: *const usize) -> ! {
    let argc = *sp;
    let argv = sp.add(1) as *const *const u8;
    let envp = argv.add(argc + 1);
    // execve made us dumpable again (unless the memfd is unreadable to us): nothing in
    // the container should ptrace us or open our /proc files while we hold the fifo.
    syscall(SYS_PRCTL, PR_SET_DUMPABLE, 0, 0, 0, 0, 0);
    if argc < 5 {
        exit(255);
    }
    let chan = parse_fd(*argv.add(1)).unwrap_or(-1);
    if chan < 0 {
        exit(255);
    }
    if let Some(fifo) = parse_fd(*argv.add(2)) {
        // As paddock's init: with nobody left to tell, it gives up rather than wait.
        let sent = send(chan, b"\"Ready\"");
        if sent < 0 {
            fail(chan, &[b"send to peer: "], -sent, true);
        }
        wait_for_start(chan, fifo);
        syscall(SYS_FCNTL, fifo as usize, F_SETFD, FD_CLOEXEC, 0, 0, 0);
    }
    syscall(SYS_FCNTL, chan as usize, F_SETFD, FD_CLOEXEC, 0, 0, 0);
    let path = *argv.add(3);
    let err = syscall(
        SYS_EXECVE,
        path as usize,
        argv.add(4) as usize,
        envp as usize,
        0,
        0,
        0,
    );
    fail(chan, &[b"exec ", cstr(path), b": "], -err, false)
}

/// A decimal fd, or None for `-` (or anything else that is not one).
unsafe fn parse_fd(s: *const u8) -> Option<isize> {
    let s = cstr(s);
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut n: isize = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as isize;
    }
    Some(n)
}

unsafe fn cstr<'a>(s: *const u8) -> &'a [u8] {
    let mut n = 0;
    // Volatile: a plain loop is turned into a call to strlen, which nothing provides.
    while core::ptr::read_volatile(s.add(n)) != 0 {
        n += 1;
    }
    core::slice::from_raw_parts(s, n)
}

/// Sends one message; the result is sendto's (a negative errno on failure).
unsafe fn send(chan: isize, msg: &[u8]) -> isize {
    syscall(
        SYS_SENDTO,
        chan as usize,
        msg.as_ptr() as usize,
        msg.len(),
        MSG_NOSIGNAL,
        0,
        0,
    )
}

unsafe fn wait_for_start(chan: isize, fifo: isize) {
    let mut byte = 0u8;
    loop {
        let n = syscall(
            SYS_READ,
            fifo as usize,
            &mut byte as *mut u8 as usize,
            1,
            0,
            0,
            0,
        );
        match n {
            1 => return,
            n if n == -EINTR => continue,
            0 => fail(
                chan,
                &[b"wait for start on the exec fifo: end of file"],
                0,
                true,
            ),
            n => fail(chan, &[b"wait for start on the exec fifo: "], -n, true),
        }
    }
}

/// Reports `parts` and errno (0: none) as paddock's init would, over the channel, or
/// on stderr once nobody listens there, and exits 255 like a failed init. `io_style`
/// picks std::io::Error's wording ("Desc (os error N)") over nix's ("ENAME: Desc").
unsafe fn fail(chan: isize, parts: &[&[u8]], errno: isize, io_style: bool) -> ! {
    let (name, desc) = describe(errno);
    let mut text = Text::new();
    for p in parts {
        text.push(p);
    }
    if errno != 0 {
        if io_style {
            text.push(desc);
            text.push(b" (os error ");
            text.number(errno);
            text.push(b")");
        } else {
            text.push(name);
            text.push(b": ");
            text.push(desc);
        }
    }
    let msg = &*core::ptr::addr_of!(MESSAGE);
    let (start, end) = text.finish();
    if send(chan, &msg[..end]) < 0 {
        // The plain text, without the JSON around it.
        let plain = &msg[start..end - 3];
        for piece in [b"paddock init: " as &[u8], plain, b"\n"] {
            syscall(SYS_WRITE, 2, piece.as_ptr() as usize, piece.len(), 0, 0, 0);
        }
    }
    exit(255)
}

/// `{"Error":{"message":"..."}}` built in MESSAGE, the text JSON-escaped.
struct Text {
    len: usize,
}

const PREFIX: &[u8] = b"{\"Error\":{\"message\":\"";

impl Text {
    unsafe fn new() -> Text {
        let mut t = Text { len: 0 };
        t.raw(PREFIX);
        t
    }

    unsafe fn raw(&mut self, s: &[u8]) {
        let msg = &mut *core::ptr::addr_of_mut!(MESSAGE);
        for &c in s {
            // Room is kept for the closing `"}}`.
            if self.len + 3 < msg.len() {
                msg[self.len] = c;
                self.len += 1;
            }
        }
    }

    unsafe fn push(&mut self, s: &[u8]) {
        for &c in s {
            match c {
                b'"' => self.raw(b"\\\""),
                b'\\' => self.raw(b"\\\\"),
                0..=0x1f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.raw(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(c >> 4) as usize],
                        HEX[(c & 15) as usize],
                    ]);
                }
                _ => self.raw(&[c]),
            }
        }
    }

    unsafe fn number(&mut self, mut n: isize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.raw(&digits[i..]);
    }

    /// Closes the JSON; returns where the text starts and where the message ends.
    unsafe fn finish(mut self) -> (usize, usize) {
        let msg = &mut *core::ptr::addr_of_mut!(MESSAGE);
        for &c in b"\"}}" {
            msg[self.len] = c;
            self.len += 1;
        }
        (PREFIX.len(), self.len)
    }
}

/// The errno's name and description as nix and std print them, for what execve,
/// read and send can fail with.
fn describe(errno: isize) -> (&'static [u8], &'static [u8]) {
    match errno {
        1 => (b"EPERM", b"Operation not permitted"),
        2 => (b"ENOENT", b"No such file or directory"),
        4 => (b"EINTR", b"Interrupted system call"),
        5 => (b"EIO", b"Input/output error"),
        7 => (b"E2BIG", b"Argument list too long"),
        8 => (b"ENOEXEC", b"Exec format error"),
        9 => (b"EBADF", b"Bad file descriptor"),
        12 => (b"ENOMEM", b"Cannot allocate memory"),
        13 => (b"EACCES", b"Permission denied"),
        14 => (b"EFAULT", b"Bad address"),
        20 => (b"ENOTDIR", b"Not a directory"),
        21 => (b"EISDIR", b"Is a directory"),
        22 => (b"EINVAL", b"Invalid argument"),
        23 => (b"ENFILE", b"Too many open files in system"),
        24 => (b"EMFILE", b"Too many open files"),
        26 => (b"ETXTBSY", b"Text file busy"),
        32 => (b"EPIPE", b"Broken pipe"),
        36 => (b"ENAMETOOLONG", b"File name too long"),
        40 => (b"ELOOP", b"Too many levels of symbolic links"),
        80 => (b"ELIBBAD", b"Accessing a corrupted shared library"),
        _ => (b"EUNKNOWN", b"Unknown error"),
    }
}
