//! Shared pieces of the escape battery (security.md section 2, T01-T39), used by
//! tests/security_*.rs: a guard that checks the global invariants (a)-(d) when a test
//! ends (the common Env checks (e): state, cgroups, processes), and small helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::ops::Deref;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::common::{self, Bundle, Env, Out};

/// A listing of everything under `dir` (relative names, with type and size), or
/// just its top level.
pub fn tree(dir: &Path, deep: bool) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    fn walk(base: &Path, dir: &Path, deep: bool, set: &mut BTreeSet<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let kind = if md.is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                "dir".into()
            } else {
                format!("{:?} {} bytes", md.file_type(), md.len())
            };
            set.insert(format!("{rel} {kind}"));
            if deep && md.is_dir() {
                walk(base, &p, deep, set);
            }
        }
    }
    walk(dir, dir, deep, &mut set);
    set
}

fn read_opt(p: &str) -> Option<String> {
    fs::read_to_string(p).ok()
}

/// Host mountinfo lines without the mount IDs, ignoring other tests' temp dirs.
fn host_mounts(own_dir: &str) -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mp = *f.get(4)?;
            // Concurrent tests (this binary's and others') mount under their own
            // temp dirs; the common Env checks those for itself.
            if mp.starts_with("/tmp/paddock-test-") && !format!("{mp}/").starts_with(own_dir) {
                return None;
            }
            Some(f[3..].join(" "))
        })
        .collect()
}

/// The global invariants: (a) the runtime binary is unchanged, (b) no new host mount,
/// (c) no new files in the sentinel dirs and at `/`, (d) core_pattern, modprobe and
/// the hostname are unchanged.
struct Snapshot {
    own_dir: String,
    binary: Vec<u8>,
    mounts: BTreeSet<String>,
    top: BTreeSet<String>,
    sysctls: Vec<(&'static str, Option<String>)>,
    sentinels: Mutex<Vec<(PathBuf, BTreeSet<String>)>>,
}

const SYSCTLS: [&str; 3] = [
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/kernel/hostname",
];

impl Snapshot {
    fn take(own_dir: String) -> Snapshot {
        Snapshot {
            binary: fs::read(common::bin()).unwrap(),
            mounts: host_mounts(&own_dir),
            top: top_level(),
            sysctls: SYSCTLS.iter().map(|p| (*p, read_opt(p))).collect(),
            sentinels: Mutex::new(Vec::new()),
            own_dir,
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if fs::read(common::bin()).unwrap() != self.binary {
            p.push(format!("(a) {} changed", common::bin().display()));
        }
        let now = host_mounts(&self.own_dir);
        let new: Vec<_> = now.difference(&self.mounts).collect();
        if !new.is_empty() {
            p.push(format!("(b) new host mounts: {new:#?}"));
        }
        let new: Vec<_> = top_level().difference(&self.top).cloned().collect();
        if !new.is_empty() {
            p.push(format!("(c) new entries at /: {new:?}"));
        }
        for (dir, before) in self.sentinels.lock().unwrap().iter() {
            let after = tree(dir, true);
            if &after != before {
                p.push(format!(
                    "(c) sentinel {} changed: {before:?} -> {after:?}",
                    dir.display()
                ));
            }
        }
        for (path, before) in &self.sysctls {
            if &read_opt(path) != before {
                p.push(format!("(d) {path} changed: {before:?}"));
            }
        }
        p
    }
}

fn top_level() -> BTreeSet<String> {
    fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// One battery test's world: the common Env plus the invariant snapshot. Fields drop
/// in order: the invariants are checked first, then the Env checks and cleans up.
pub struct Sec {
    snap: Snapshot,
    pub env: Env,
}

impl Deref for Sec {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl Default for Sec {
    fn default() -> Self {
        Self::new()
    }
}

impl Sec {
    pub fn new() -> Sec {
        let env = Env::new();
        Sec {
            snap: Snapshot::take(env.dir_slash()),
            env,
        }
    }

    /// Remembers the present contents of `dir`: it must be the same when the test ends.
    pub fn sentinel(&self, dir: &Path) {
        self.snap
            .sentinels
            .lock()
            .unwrap()
            .push((dir.to_path_buf(), tree(dir, true)));
    }

    /// A fresh empty sentinel dir under the temp dir.
    pub fn outside(&self, name: &str) -> PathBuf {
        let d = self.env.mkdir(name);
        self.sentinel(&d);
        d
    }

    /// create + start; returns the ID and the host pid of the init.
    #[track_caller]
    pub fn up(&self, b: &Bundle) -> (String, i32) {
        let id = self.env.id("sec");
        self.env.create(b, &id).success();
        self.env.paddock(&["start", &id]).success();
        assert!(self.env.wait_status(&id, "running"));
        (
            id.clone(),
            self.env.state(&id)["pid"].as_i64().unwrap() as i32,
        )
    }

    #[track_caller]
    pub fn down(&self, id: &str) {
        self.env.paddock(&["delete", "--force", id]).success();
    }

    /// `paddock exec [pre..] ID cmd..`
    pub fn exec(&self, pre: &[&str], id: &str, cmd: &[&str]) -> Out {
        self.env.paddock(&exec_args(pre, id, cmd))
    }

    /// Runs `sh -c script` in a throwaway container (success asserted) and returns stdout.
    #[track_caller]
    pub fn sh(&self, b: &mut Bundle, script: &str) -> String {
        self.env.run_args(b, &["sh", "-c", script]).stdout
    }
}

impl Drop for Sec {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let p = self.snap.problems();
        assert!(p.is_empty(), "global invariants broken: {p:#?}");
    }
}

pub fn exec_args<'a>(pre: &[&'a str], id: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["exec"];
    a.extend_from_slice(pre);
    a.push(id);
    a.extend_from_slice(cmd);
    a
}

/// Value of a `Key:\tvalue` line of /proc/PID/status text.
pub fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in {status}"))
        .trim()
}

/// Makes the spawned command inherit host directory fds (no CLOEXEC) at the given
/// numbers: the "leaky harness" of T08/T10/T11.
pub fn leak_dirs(cmd: &mut Command, fds: &[(RawFd, &Path)]) {
    let opened: Vec<(RawFd, RawFd)> = fds
        .iter()
        .map(|(n, p)| {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: opening a directory; the fd lives as long as the test process.
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            assert!(fd >= 0);
            // SAFETY: moving it above the target range.
            let hi = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 200) };
            // SAFETY: closing our own fd.
            unsafe { libc::close(fd) };
            (hi, *n)
        })
        .collect();
    // SAFETY: dup2 is async-signal-safe; the targets end up without CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            for &(from, to) in &opened {
                if libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

pub fn top_names(rootfs: &Path) -> Vec<String> {
    fs::read_dir(rootfs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Reads a pty master (non-blocking) until `until` appears or the bound runs out.
pub fn read_pty(master: &OwnedFd, until: &str) -> String {
    use std::os::fd::AsFd;
    common::read_pty_until(master.as_fd(), until).replace('\r', "")
}
