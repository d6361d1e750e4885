//! `paddock features`: the runtime-spec Features structure (features.md,
//! features-linux.md), built from the tables the runtime itself works from, so that
//! it cannot claim more (or less) than this binary does.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use serde::Serialize;

use crate::linux::{caps, hooks, mounts, seccomp};
use crate::spec::attrs;

/// Every namespace type config.json can name: `namespaces::plan` creates or joins
/// each (its `flag_of` matches every oci-spec type).
const NAMESPACES: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::User,
    LinuxNamespaceType::Uts,
];

/// Config annotations that change what paddock does, as runc lists them
/// (`org.criu.config` would come with checkpointing).
const UNSAFE_CONFIG_ANNOTATIONS: [&str; 1] = ["org.systemd.property."];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Features {
    oci_version_min: &'static str,
    oci_version_max: &'static str,
    hooks: Vec<&'static str>,
    mount_options: Vec<String>,
    linux: Linux,
    annotations: BTreeMap<&'static str, String>,
    potentially_unsafe_config_annotations: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    namespaces: Vec<String>,
    capabilities: Vec<String>,
    cgroup: Cgroup,
    seccomp: Seccomp,
    apparmor: Enabled,
    selinux: Enabled,
    intel_rdt: Enabled,
    memory_policy: MemoryPolicy,
    mount_extensions: MountExtensions,
    net_devices: Enabled,
}

#[derive(Serialize)]
struct MemoryPolicy {
    modes: Vec<&'static str>,
    flags: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cgroup {
    v1: bool,
    v2: bool,
    systemd: bool,
    systemd_user: bool,
    rdma: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Seccomp {
    enabled: bool,
    actions: Vec<&'static str>,
    operators: Vec<&'static str>,
    archs: Vec<&'static str>,
    known_flags: Vec<&'static str>,
    supported_flags: Vec<&'static str>,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Serialize)]
struct MountExtensions {
    idmap: Enabled,
}

pub fn features() -> Result<()> {
    // Indented by four spaces, as runc prints it.
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, formatter);
    build()?.serialize(&mut ser).context("features")?;
    text.push(b'\n');
    crate::print_stdout(&String::from_utf8_lossy(&text));
    Ok(())
}

fn build() -> Result<Features> {
    let mut namespaces = NAMESPACES
        .iter()
        .map(|t| match serde_json::to_value(t)? {
            serde_json::Value::String(name) => Ok(name),
            other => anyhow::bail!("namespace type {other} is not a string"),
        })
        .collect::<Result<Vec<_>>>()?;
    namespaces.sort();
    let mut annotations = BTreeMap::new();
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        annotations.insert("io.github.seccomp.libseccomp.version", v.to_string());
    }
    Ok(Features {
        oci_version_min: "1.0.0",
        oci_version_max: crate::state::OCI_VERSION,
        hooks: hooks::known_names(),
        mount_options: mounts::known_options(),
        linux: Linux {
            namespaces,
            capabilities: caps::known_names(),
            cgroup: Cgroup {
                v1: true,
                v2: true,
                // --systemd-cgroup; the user instance (rootless) is not supported.
                systemd: true,
                systemd_user: false,
                rdma: true,
            },
            seccomp: Seccomp {
                enabled: true,
                actions: seccomp::names::known_actions(),
                operators: seccomp::names::known_operators(),
                archs: seccomp::names::known_archs(),
                known_flags: seccomp::names::known_flags(),
                supported_flags: seccomp::supported_flags(),
            },
            // Support in the runtime, not on this host (features-linux.md), as runc says:
            // profiles and labels are applied where the host has the LSM.
            apparmor: Enabled { enabled: true },
            selinux: Enabled { enabled: true },
            // Refused by spec::load (linux.intelRdt without resctrl).
            intel_rdt: Enabled { enabled: false },
            memory_policy: MemoryPolicy {
                modes: attrs::MEMORY_POLICY_MODES.iter().map(|(n, _)| *n).collect(),
                flags: attrs::MEMORY_POLICY_FLAGS.iter().map(|(n, _)| *n).collect(),
            },
            mount_extensions: MountExtensions {
                idmap: Enabled { enabled: true },
            },
            net_devices: Enabled { enabled: true },
        },
        annotations,
        potentially_unsafe_config_annotations: UNSAFE_CONFIG_ANNOTATIONS.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_namespace_type_is_listed_once_and_planned() {
        let f = build().unwrap();
        assert_eq!(
            f.linux.namespaces,
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
        );
        for t in NAMESPACES {
            let ns: oci_spec::runtime::LinuxNamespace =
                serde_json::from_value(serde_json::json!({ "type": t })).unwrap();
            crate::linux::namespaces::plan(&[ns]).unwrap();
        }
    }

    #[test]
    fn supported_flags_are_known_flags() {
        let f = build().unwrap();
        let s = &f.linux.seccomp;
        assert!(s.supported_flags.iter().all(|x| s.known_flags.contains(x)));
        assert!(s.known_flags.contains(&"SECCOMP_FILTER_FLAG_TSYNC"));
        assert!(f.linux.capabilities.iter().all(|c| c.starts_with("CAP_")));
        assert_eq!(f.linux.capabilities[0], "CAP_CHOWN");
    }
}
