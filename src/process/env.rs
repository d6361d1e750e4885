//! The environment the container's process gets, prepared as runc does right before
//! execve: one entry per name (the last one wins), and HOME filled in from the
//! container's /etc/passwd when it is missing or empty.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Result};

/// HOME for a uid that /etc/passwd does not name (runc's default).
const DEFAULT_HOME: &str = "/";

/// More than any real passwd file; the container's copy is not trusted to be small.
const PASSWD_LIMIT: u64 = 4 << 20;

/// `env` deduplicated (keeping each name's last entry, in the order of those
/// entries), with `HOME=<home of uid>` appended when no non-empty HOME is set.
pub fn prepare(env: &[String], uid: u32) -> Result<Vec<String>> {
    prepare_with(env, || home_of(uid))
}

fn prepare_with(env: &[String], home: impl FnOnce() -> String) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(env.len() + 1);
    let mut home_set = false;
    for entry in env.iter().rev() {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("invalid environment variable: missing '='");
        };
        if key.is_empty() {
            bail!("invalid environment variable: name cannot be empty");
        }
        if !seen.insert(key) {
            continue;
        }
        if entry.contains('\0') {
            bail!("invalid environment variable {key:?}: contains nul byte (\\x00)");
        }
        if key == "HOME" {
            if value.is_empty() {
                // An empty HOME is replaced, as if it were not set.
                continue;
            }
            home_set = true;
        }
        out.push(entry.clone());
    }
    out.reverse();
    if !home_set {
        out.push(format!("HOME={}", home()));
    }
    Ok(out)
}

/// The home directory of `uid` in the container's /etc/passwd (we are inside its
/// root by now), or "/" when the file or the entry is missing or unreadable.
fn home_of(uid: u32) -> String {
    read_passwd()
        .and_then(|text| home_in(&text, uid))
        .unwrap_or_else(|| DEFAULT_HOME.to_string())
}

/// The container's /etc/passwd if it is a regular file outside procfs and sysfs:
/// opened non-blocking, so a FIFO planted there cannot hang us, and read bounded.
fn read_passwd() -> Option<String> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open("/etc/passwd")
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    // A link into /proc or /sys could make us read our own (host) environment or
    // kernel state into the container's HOME.
    let fs_type = nix::sys::statfs::fstatfs(&file).ok()?.filesystem_type();
    if fs_type == nix::sys::statfs::PROC_SUPER_MAGIC || fs_type == nix::sys::statfs::SYSFS_MAGIC {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(PASSWD_LIMIT).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `name:password:uid:gid:gecos:home:shell`; the first entry for `uid` counts.
fn home_in(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.trim().split(':').collect();
        let matches = fields.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid);
        matches.then(|| fields.get(5).copied().unwrap_or_default().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn last_entry_wins_and_home_is_added() {
        let got = prepare_with(&v(&["A=1", "B=2", "A=3"]), || "/root".into()).unwrap();
        assert_eq!(got, v(&["B=2", "A=3", "HOME=/root"]));
    }

    #[test]
    fn empty_home_is_replaced_and_a_set_one_kept() {
        let got = prepare_with(&v(&["HOME=", "X=1"]), || "/home/u".into()).unwrap();
        assert_eq!(got, v(&["X=1", "HOME=/home/u"]));
        let got = prepare_with(&v(&["HOME=/h", "HOME="]), || "/other".into()).unwrap();
        assert_eq!(got, v(&["HOME=/other"]));
        let got = prepare_with(&v(&["HOME=/h"]), || unreachable!()).unwrap();
        assert_eq!(got, v(&["HOME=/h"]));
    }

    #[test]
    fn bad_entries_fail_as_in_runc() {
        let err = |e: &[&str]| prepare_with(&v(e), || "/".into()).unwrap_err().to_string();
        assert_eq!(err(&["NOEQ"]), "invalid environment variable: missing '='");
        assert_eq!(
            err(&["=x"]),
            "invalid environment variable: name cannot be empty"
        );
        assert!(err(&["A=a\0b"]).contains("contains nul byte"));
    }

    #[test]
    fn passwd_lookup() {
        let text =
            "root:x:0:0:root:/root:/bin/sh\nbad line\nu:x:1000:1000::/home/u:/bin/sh\nshort:x:7\n";
        assert_eq!(home_in(text, 0).as_deref(), Some("/root"));
        assert_eq!(home_in(text, 1000).as_deref(), Some("/home/u"));
        assert_eq!(home_in(text, 7).as_deref(), Some(""));
        assert_eq!(home_in(text, 42), None);
    }
}
