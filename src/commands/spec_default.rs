//! The config.json that `paddock spec` writes: a small, locked-down container running `sh`
//! on a terminal, runc 1.5's default config. `rootless` adapts it for an unprivileged user
//! as runc does: a user namespace mapping only the caller, no new network namespace, /sys
//! bind-mounted, no resources. Differences: the hostname, and one more masked path.

use serde_json::{json, Value};

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// Paths hidden from the container (over-mounted with an empty file or tmpfs).
const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only inside the container.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub fn default_spec(rootless: bool) -> Value {
    json!({
        "ociVersion": "1.3.0",
        "process": process(),
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "paddock",
        "mounts": mounts(rootless),
        "linux": linux(rootless),
    })
}

fn process() -> Value {
    json!({
        "terminal": true,
        "user": { "uid": 0, "gid": 0 },
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": DEFAULT_CAPS,
            "effective": DEFAULT_CAPS,
            "permitted": DEFAULT_CAPS,
        },
        "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
        "noNewPrivileges": true,
    })
}

fn mounts(rootless: bool) -> Value {
    let mut devpts_options = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    // gid=5 (tty) usually is not mapped into a rootless user namespace.
    if !rootless {
        devpts_options.push("gid=5");
    }
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount("/dev/pts", "devpts", "devpts", &devpts_options),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
    ];
    if rootless {
        // A user namespace that does not own the network namespace may not mount sysfs.
        mounts.push(mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
    } else {
        mounts.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ));
    }
    mounts.push(mount(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", "ro"],
    ));
    Value::from(mounts)
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    let mut m = json!({ "destination": destination, "type": typ, "source": source });
    if !options.is_empty() {
        m["options"] = json!(options);
    }
    m
}

/// runc's order; a cgroup namespace only on a pure cgroup v2 host, as runc 1.5 does.
fn linux(rootless: bool) -> Value {
    let mut namespaces = vec!["pid", "ipc", "uts", "mount"];
    if !rootless {
        namespaces.insert(1, "network");
    }
    if unified_cgroup_v2() {
        namespaces.push("cgroup");
    }
    let mut linux = json!({
        "namespaces": namespaces
            .iter()
            .map(|t| json!({ "type": t }))
            .collect::<Vec<_>>(),
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    });
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        if let Some(list) = linux["namespaces"].as_array_mut() {
            list.push(json!({ "type": "user" }));
        }
        linux["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
        linux["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
    } else {
        linux["resources"] = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    }
    linux
}

/// /sys/fs/cgroup is itself a cgroup2 mount (no v1 hierarchies).
fn unified_cgroup_v2() -> bool {
    const CGROUP2_SUPER_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x6367_7270);
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxNamespaceType, Spec};

    fn parse(value: Value) -> Spec {
        serde_json::from_value(value).unwrap()
    }

    fn namespace_types(spec: &Spec) -> Vec<LinuxNamespaceType> {
        let linux = spec.linux().as_ref().unwrap();
        let namespaces = linux.namespaces().as_ref().unwrap();
        namespaces.iter().map(|n| n.typ()).collect()
    }

    fn destinations(spec: &Spec) -> Vec<String> {
        let mounts = spec.mounts().as_ref().unwrap();
        mounts
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect()
    }

    #[test]
    fn default_spec_is_a_valid_oci_spec() {
        let spec = parse(default_spec(false));
        assert_eq!(spec.version(), "1.3.0");
        assert_eq!(spec.hostname().as_deref(), Some("paddock"));
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path().to_str(), Some("rootfs"));
        assert_eq!(root.readonly(), Some(true));

        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(process.args().as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 3);
        assert!(caps.inheritable().is_none() && caps.ambient().is_none());
        assert_eq!(process.rlimits().as_ref().unwrap().len(), 1);

        assert!(namespace_types(&spec).contains(&LinuxNamespaceType::Network));
        assert_eq!(
            namespace_types(&spec).contains(&LinuxNamespaceType::Cgroup),
            unified_cgroup_v2()
        );
        assert!(!namespace_types(&spec).contains(&LinuxNamespaceType::User));
        assert!(destinations(&spec).contains(&"/sys/fs/cgroup".to_string()));
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.resources().is_some());
        assert_eq!(
            linux.masked_paths().as_ref().unwrap().len(),
            MASKED_PATHS.len()
        );
        assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
    }

    #[test]
    fn rootless_spec_maps_the_caller_and_drops_host_only_parts() {
        let value = default_spec(true);
        let spec = parse(value.clone());
        let types = namespace_types(&spec);
        assert!(types.contains(&LinuxNamespaceType::User));
        assert!(!types.contains(&LinuxNamespaceType::Network));

        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.resources().is_none());
        let uid_map = &linux.uid_mappings().as_ref().unwrap()[0];
        assert_eq!(uid_map.container_id(), 0);
        assert_eq!(uid_map.host_id(), nix::unistd::geteuid().as_raw());
        assert_eq!(uid_map.size(), 1);
        assert_eq!(linux.gid_mappings().as_ref().unwrap().len(), 1);

        assert!(destinations(&spec).contains(&"/sys/fs/cgroup".to_string()));
        let mounts = value["mounts"].as_array().unwrap();
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["type"], "none");
        assert_eq!(sys["source"], "/sys");
        let devpts = mounts
            .iter()
            .find(|m| m["destination"] == "/dev/pts")
            .unwrap();
        assert!(!devpts["options"]
            .as_array()
            .unwrap()
            .contains(&json!("gid=5")));
    }
}
