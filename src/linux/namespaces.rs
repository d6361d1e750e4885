//! Namespaces from `linux.namespaces`: which to create with clone(), which to
//! join by path, and the uid/gid maps of a new user namespace.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType};

/// Joined by `path`: the namespace type (a CLONE_NEW* flag) and its file.
#[derive(Debug)]
pub struct Join {
    pub flag: libc::c_int,
    pub path: PathBuf,
}

/// The namespace plan, computed before anything is created.
#[derive(Default, Debug)]
pub struct Plan {
    /// CLONE_NEW* flags for the namespaces the clone() creates (no time, no cgroup).
    pub clone_flags: libc::c_int,
    /// A new cgroup namespace is unshared by init once it sits in its cgroup.
    pub new_cgroup: bool,
    /// A new time namespace is unshared by the parent for its children (clone() has no flag for it).
    pub new_time: bool,
    pub joins: Vec<Join>,
}

impl Plan {
    pub fn new_user(&self) -> bool {
        self.clone_flags & libc::CLONE_NEWUSER != 0
    }

    /// The container has its own namespace of this type, new or joined.
    pub fn has(&self, flag: libc::c_int) -> bool {
        let new = match flag {
            libc::CLONE_NEWCGROUP => self.new_cgroup,
            libc::CLONE_NEWTIME => self.new_time,
            f => self.clone_flags & f != 0,
        };
        new || self.joins.iter().any(|j| j.flag == flag)
    }

    pub fn join_of(&self, flag: libc::c_int) -> Option<&Join> {
        self.joins.iter().find(|j| j.flag == flag)
    }
}

pub fn flag_of(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// Builds the plan from config; rejects duplicates and relative paths.
pub fn plan(namespaces: &[LinuxNamespace]) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut seen = 0;
    for (i, ns) in namespaces.iter().enumerate() {
        let flag = flag_of(ns.typ());
        if seen & flag != 0 {
            bail!(
                "linux.namespaces[{i}]: duplicate namespace type {:?}",
                ns.typ()
            );
        }
        seen |= flag;
        // An empty path means a new namespace, as in runc.
        match ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => {
                if !path.is_absolute() {
                    bail!(
                        "linux.namespaces[{i}].path: must be absolute, got {}",
                        path.display()
                    );
                }
                plan.joins.push(Join {
                    flag,
                    path: path.clone(),
                });
            }
            None => match flag {
                libc::CLONE_NEWCGROUP => plan.new_cgroup = true,
                libc::CLONE_NEWTIME => plan.new_time = true,
                f => plan.clone_flags |= f,
            },
        }
    }
    // A joined user namespace must be entered before anything else; user first.
    plan.joins
        .sort_by_key(|j| (j.flag != libc::CLONE_NEWUSER, j.flag == libc::CLONE_NEWNS));
    Ok(plan)
}

/// Opens a namespace file and checks it is a namespace of the expected type.
pub fn open_ns(join: &Join) -> Result<OwnedFd> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&join.path)
        .with_context(|| format!("linux.namespaces: open {}", join.path.display()))?;
    // NS_GET_NSTYPE = _IO(0xb7, 0x3)
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: ioctl on a valid fd with no argument.
    let t = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE) };
    if t < 0 {
        bail!(
            "linux.namespaces: {} is not a namespace file",
            join.path.display()
        );
    }
    if t != join.flag {
        bail!(
            "linux.namespaces: {} is a namespace of another type",
            join.path.display()
        );
    }
    Ok(f.into())
}

pub fn setns(fd: &OwnedFd, flag: libc::c_int, what: &str) -> Result<()> {
    // SAFETY: setns on a valid namespace fd.
    if unsafe { libc::setns(fd.as_raw_fd(), flag) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns {what}"));
    }
    Ok(())
}

/// Rejects empty or overlapping uid/gid mapping ranges.
pub fn validate_mappings(field: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            bail!("{field}[{i}].size: must be greater than 0");
        }
        for (j, n) in maps.iter().enumerate().skip(i + 1) {
            let overlap = |a: u32, b: u32| {
                let (a, b, s, t) = (a as u64, b as u64, m.size() as u64, n.size() as u64);
                a < b + t && b < a + s
            };
            if overlap(m.container_id(), n.container_id()) || overlap(m.host_id(), n.host_id()) {
                bail!("{field}[{i}] and {field}[{j}]: ranges overlap");
            }
        }
    }
    Ok(())
}

/// The text written to /proc/<pid>/uid_map or gid_map.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Whether `id` inside the namespace is covered by `maps`.
pub fn maps_contain(maps: &[LinuxIdMapping], id: u32) -> bool {
    maps.iter()
        .any(|m| id >= m.container_id() && (id as u64) < m.container_id() as u64 + m.size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder};

    fn ns(t: LinuxNamespaceType, path: Option<&str>) -> LinuxNamespace {
        let mut b = LinuxNamespaceBuilder::default().typ(t);
        if let Some(p) = path {
            b = b.path(p);
        }
        b.build().unwrap()
    }

    #[test]
    fn plan_splits_new_and_joined() {
        let p = plan(&[
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, Some("/proc/1/ns/mnt")),
            ns(LinuxNamespaceType::Network, Some("/proc/1/ns/net")),
            ns(LinuxNamespaceType::User, Some("/proc/1/ns/user")),
            ns(LinuxNamespaceType::Cgroup, None),
            ns(LinuxNamespaceType::Time, None),
        ])
        .unwrap();
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID);
        assert!(p.new_cgroup && p.new_time);
        let order: Vec<_> = p.joins.iter().map(|j| j.flag).collect();
        assert_eq!(
            order,
            [libc::CLONE_NEWUSER, libc::CLONE_NEWNET, libc::CLONE_NEWNS]
        );
        assert!(p.has(libc::CLONE_NEWNET) && !p.has(libc::CLONE_NEWIPC));
    }

    #[test]
    fn duplicates_and_relative_paths_are_rejected() {
        assert!(plan(&[
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Pid, None)
        ])
        .is_err());
        let e = plan(&[ns(LinuxNamespaceType::Network, Some("x/net"))]).unwrap_err();
        assert!(e.to_string().contains("linux.namespaces[0].path"));
    }

    fn map(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .unwrap()
    }

    #[test]
    fn overlapping_mappings_are_rejected() {
        assert!(
            validate_mappings("linux.uidMappings", &[map(0, 1000, 10), map(10, 2000, 5)]).is_ok()
        );
        assert!(
            validate_mappings("linux.uidMappings", &[map(0, 1000, 10), map(5, 2000, 5)]).is_err()
        );
        assert!(
            validate_mappings("linux.uidMappings", &[map(0, 1000, 10), map(20, 1005, 5)]).is_err()
        );
        assert!(validate_mappings("linux.uidMappings", &[map(0, 1000, 0)]).is_err());
        assert_eq!(map_text(&[map(0, 1000, 10)]), "0 1000 10\n");
        assert!(maps_contain(&[map(0, 1000, 10)], 9) && !maps_contain(&[map(0, 1000, 10)], 10));
    }
}
