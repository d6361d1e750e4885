//! `linux.sysctl`: only namespaced keys, and only when the container owns that namespace.
//!
//! A sysctl that is not namespaced changes the whole host, and a namespaced one in a
//! namespace shared with the host changes the host's value too; both are refused.

use std::collections::HashMap;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
use nix::unistd::write;

/// Whether the container has its own (new or joined) namespace of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceFlags {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
}

/// System V IPC sysctls that follow the ipc namespace (besides `fs.mqueue.*`).
const IPC_KERNEL_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Which namespace a sysctl key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Ipc,
    Net,
    Uts,
}

/// Checks every key: well formed, namespaced, and its namespace is the container's own.
pub fn validate(
    sysctl: &HashMap<String, String>,
    ns: &NamespaceFlags,
    hostname_set: bool,
) -> Result<()> {
    for key in sorted_keys(sysctl) {
        validate_key(key, ns, hostname_set)?;
    }
    Ok(())
}

/// Writes each value verbatim to /proc/sys. Runs before pivot_root, inside the container's
/// namespaces, through the host's (trusted) /proc.
pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    for key in sorted_keys(sysctl) {
        let value = &sysctl[key];
        write_sysctl(key, value).with_context(|| format!("linux.sysctl: set {key}={value:?}"))?;
    }
    Ok(())
}

fn sorted_keys(sysctl: &HashMap<String, String>) -> Vec<&str> {
    let mut keys: Vec<&str> = sysctl.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn validate_key(key: &str, ns: &NamespaceFlags, hostname_set: bool) -> Result<()> {
    check_well_formed(key)?;
    let Some(owner) = owner_of(key) else {
        bail!("linux.sysctl: {key} is not namespaced and cannot be set in a container");
    };
    let (owned, namespace) = match owner {
        Owner::Ipc => (ns.ipc, "an ipc"),
        Owner::Net => (ns.net, "a network"),
        Owner::Uts => (ns.uts, "a uts"),
    };
    if !owned {
        bail!(
            "linux.sysctl: {key} requires {namespace} namespace (the container shares the host's)"
        );
    }
    if key == "kernel.hostname" && hostname_set {
        bail!("linux.sysctl: kernel.hostname conflicts with the hostname field; set only one");
    }
    Ok(())
}

/// Keys are dot-separated names; anything that could walk out of /proc/sys is refused.
fn check_well_formed(key: &str) -> Result<()> {
    if key.contains('/') || key.contains('\0') {
        bail!("linux.sysctl: {key:?} is not a valid sysctl name ('/' and NUL are not allowed)");
    }
    if key.split('.').any(str::is_empty) {
        bail!("linux.sysctl: {key:?} is not a valid sysctl name (empty component)");
    }
    Ok(())
}

fn owner_of(key: &str) -> Option<Owner> {
    if IPC_KERNEL_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(Owner::Ipc)
    } else if key.starts_with("net.") {
        Some(Owner::Net)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(Owner::Uts)
    } else {
        None
    }
}

fn proc_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = proc_path(key);
    let fd = open(
        &path,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let fs = fstatfs(fd.as_fd()).with_context(|| format!("fstatfs {}", path.display()))?;
    if fs.filesystem_type() != PROC_SUPER_MAGIC {
        bail!("{} is not on procfs", path.display());
    }
    // One write(2): procfs parses each write as a whole value.
    let written =
        write(&fd, value.as_bytes()).with_context(|| format!("write {}", path.display()))?;
    if written != value.len() {
        bail!(
            "write {}: short write ({written} of {} bytes)",
            path.display(),
            value.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: NamespaceFlags = NamespaceFlags {
        net: true,
        ipc: true,
        uts: true,
    };
    const NONE: NamespaceFlags = NamespaceFlags {
        net: false,
        ipc: false,
        uts: false,
    };

    fn check(keys: &[&str], ns: NamespaceFlags, hostname_set: bool) -> Result<()> {
        let map = keys
            .iter()
            .map(|k| (k.to_string(), "1".to_string()))
            .collect();
        validate(&map, &ns, hostname_set)
    }

    fn err(keys: &[&str], ns: NamespaceFlags, hostname_set: bool) -> String {
        check(keys, ns, hostname_set).unwrap_err().to_string()
    }

    #[test]
    fn namespaced_keys_pass_with_their_namespace() {
        let keys = [
            "kernel.msgmax",
            "kernel.shm_rmid_forced",
            "fs.mqueue.msg_max",
            "net.ipv4.ip_forward",
            "net.core.somaxconn",
            "kernel.hostname",
            "kernel.domainname",
        ];
        check(&keys, ALL, false).unwrap();
    }

    #[test]
    fn host_wide_keys_are_rejected() {
        assert_eq!(
            err(&["kernel.core_pattern"], ALL, false),
            "linux.sysctl: kernel.core_pattern is not namespaced and cannot be set in a container"
        );
        assert!(err(&["vm.overcommit_memory"], ALL, false).contains("not namespaced"));
        assert!(err(&["fs.file-max"], ALL, false).contains("not namespaced"));
        // A prefix of an allowed key is not the key.
        assert!(err(&["kernel.msgmax2"], ALL, false).contains("not namespaced"));
    }

    #[test]
    fn keys_need_the_containers_own_namespace() {
        assert_eq!(
            err(&["net.ipv4.ip_forward"], NONE, false),
            "linux.sysctl: net.ipv4.ip_forward requires a network namespace \
             (the container shares the host's)"
        );
        assert!(err(&["kernel.sem"], NONE, false).contains("requires an ipc namespace"));
        assert!(err(&["fs.mqueue.queues_max"], NONE, false).contains("requires an ipc namespace"));
        assert!(err(&["kernel.domainname"], NONE, false).contains("requires a uts namespace"));
    }

    #[test]
    fn hostname_sysctl_conflicts_with_hostname_field() {
        assert!(err(&["kernel.hostname"], ALL, true).contains("conflicts with the hostname"));
        check(&["kernel.domainname"], ALL, true).unwrap();
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for key in [
            "net/ipv4/ip_forward",
            "net..ipv4",
            ".net.ipv4",
            "net.ipv4.",
            "",
            "net.ipv4.conf.all/../../../kernel/core_pattern",
            "net.a\0b",
        ] {
            assert!(check(&[key], ALL, false).is_err(), "{key:?} accepted");
        }
    }

    #[test]
    fn first_bad_key_in_sorted_order_is_reported() {
        let e = err(&["vm.swappiness", "kernel.core_pattern"], ALL, false);
        assert!(e.contains("kernel.core_pattern"), "{e}");
    }

    #[test]
    fn keys_map_to_proc_sys_paths() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }
}
