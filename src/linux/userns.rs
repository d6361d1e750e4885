//! The id maps of a new user namespace, written by the parent once the child
//! exists. As root every map is written directly; a user without privileges can
//! write only a map of its own id (after "deny" in setgroups for the gid map), so
//! anything else goes through the setuid helpers newuidmap/newgidmap, which allow
//! the ranges /etc/subuid and /etc/subgid give that user (runc does the same).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Linux, LinuxIdMapping};

use super::namespaces::map_text;

/// Writes setgroups (where needed), uid_map and gid_map of `pid`'s user namespace.
pub fn write_id_maps(pid: i32, linux: &Linux) -> Result<()> {
    let uid = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid = linux.gid_mappings().as_deref().unwrap_or_default();
    // A user without privileges may write a map of its own gid only after setgroups
    // is denied (it could otherwise drop groups that deny it access). As runc 1.5:
    // only for exactly that map; other maps go through newgidmap, which decides.
    // SAFETY: geteuid and getegid cannot fail.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let own_gid_only =
        matches!(gid, [m] if m.container_id() == 0 && m.host_id() == egid && m.size() == 1);
    if euid != 0 && own_gid_only {
        let path = format!("/proc/{pid}/setgroups");
        fs::write(&path, "deny").with_context(|| format!("write {path}"))?;
    }
    write_map(pid, "uid_map", "newuidmap", uid).context("linux.uidMappings")?;
    write_map(pid, "gid_map", "newgidmap", gid).context("linux.gidMappings")
}

fn write_map(pid: i32, file: &str, helper: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/{file}");
    match fs::write(&path, map_text(maps)) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => run_helper(pid, helper, maps)
            .with_context(|| format!("write {path}: {e}; tried {helper}")),
        Err(e) => Err(e).with_context(|| format!("write {path}")),
    }
}

fn run_helper(pid: i32, helper: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let Some(exe) = find_in_path(helper) else {
        bail!("{helper} not found in PATH (Debian package uidmap), needed to map ids other than the user's own");
    };
    let mut cmd = Command::new(&exe);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("run {}", exe.display()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim().replace('\n', "; ");
        bail!("{helper} failed ({}): {why}", out.status);
    }
    Ok(())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The uid and gid maps of the user namespace `ns` names, as (containerID, hostID,
/// size) sorted: a forked child enters it and reads its own maps.
pub fn maps_of(ns: &std::os::fd::OwnedFd) -> Result<[Vec<(u32, u32, u32)>; 2]> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let (mut rd, wr) = std::io::pipe().context("pipe")?;
    // SAFETY: fork of a single-threaded process; the child only reads and writes files.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(rd);
        let mut wr = wr;
        // SAFETY: setns on a valid fd.
        let ok = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWUSER) } == 0;
        let text = ["uid_map", "gid_map"]
            .map(|f| fs::read_to_string(format!("/proc/self/{f}")).unwrap_or_default());
        let code = if ok && wr.write_all(text.join("--\n").as_bytes()).is_ok() {
            0
        } else {
            1
        };
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(code) }
    }
    drop(wr);
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork to read the maps");
    }
    let mut text = String::new();
    let read = rd.read_to_string(&mut text);
    let code = crate::process::wait_exit_code(pid)?;
    read.context("read the maps")?;
    if code != 0 {
        bail!("cannot enter the user namespace to read its maps");
    }
    let mut parts = text.split("--\n").map(parse_map);
    Ok([
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    ])
}

fn parse_map(text: &str) -> Vec<(u32, u32, u32)> {
    let mut rows: Vec<(u32, u32, u32)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u32>());
            Some((f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?))
        })
        .collect();
    rows.sort_unstable();
    rows
}

/// As runc: mappings given together with a user namespace joined by path must be
/// that namespace's own (containerd and CRI-O pass both); a warning says so.
pub fn check_joined_maps(linux: &Linux, join: &super::namespaces::Join) -> Result<()> {
    let uid = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid = linux.gid_mappings().as_deref().unwrap_or_default();
    if uid.is_empty() && gid.is_empty() {
        return Ok(());
    }
    let fd = super::namespaces::open_ns(join)?;
    let [have_uid, have_gid] = maps_of(&fd).context("linux.namespaces: user")?;
    let rows = |maps: &[LinuxIdMapping]| {
        let mut r: Vec<_> = maps
            .iter()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect();
        r.sort_unstable();
        r
    };
    if rows(uid) != have_uid || rows(gid) != have_gid {
        bail!("linux.uidMappings: user namespaces enabled, but both namespace path and non-matching mapping specified -- you may only provide one");
    }
    crate::logger::warn("linux.uidMappings: given together with a user namespace to join by path; they match that namespace's own, so they are accepted, but give only one of the two");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parse_sorted() {
        let text = "      1000     200000      65536\n         0       1001          1\n";
        assert_eq!(parse_map(text), [(0, 1001, 1), (1000, 200000, 65536)]);
    }
}
