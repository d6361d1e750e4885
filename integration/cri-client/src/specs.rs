//! The pod and container configs, filled in the way the kubelet fills them for a pod with
//! `hostNetwork: true` under the cgroupfs driver.

use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::*;
use std::collections::HashMap;

pub const NAMESPACE: &str = "paddock-e2e";
pub const POD: &str = "e2e-pod";

/// Limits given at create time, and the values UpdateContainerResources sets later.
pub const MEMORY: i64 = 64 << 20;
pub const CPU_PERIOD: i64 = 100_000;
pub const CPU_QUOTA: i64 = 50_000;
pub const CPU_SHARES: i64 = 512;
pub const OOM_SCORE_ADJ: i64 = 500;
pub const NEW_MEMORY: i64 = 128 << 20;
pub const NEW_CPU_QUOTA: i64 = 20_000;
pub const NEW_CPU_SHARES: i64 = 256;
pub const APP_UID: i64 = 1000;

/// The kubelet's namespaces for a host-network pod: the node's network, the pod's IPC, and a
/// PID namespace per container (no shareProcessNamespace).
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn runtime_default_seccomp() -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    })
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Host network: no hostname (the pod has the node's), no DNS config, no port mappings.
pub fn sandbox(uid: &str, log_directory: &str, cgroup_parent: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: POD.into(),
            uid: uid.into(),
            namespace: NAMESPACE.into(),
            attempt: 0,
        }),
        log_directory: log_directory.into(),
        labels: labels(&[
            ("io.kubernetes.pod.name", POD),
            ("io.kubernetes.pod.namespace", NAMESPACE),
            ("io.kubernetes.pod.uid", uid),
        ]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
                seccomp: runtime_default_seccomp(),
                // The kubelet marks the sandbox privileged when a container of the pod is.
                privileged: true,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(name: &str, image: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: labels(&[("io.kubernetes.container.name", name)]),
        linux: Some(LinuxContainerConfig {
            resources: None,
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A restricted container: limits, all capabilities dropped but one, a non-root user, a
/// read-only rootfs with a writable volume, no_new_privs, seccomp RuntimeDefault. It says when
/// it starts and when SIGTERM arrives (then exits 0), so its log shows both.
pub fn app(image: &str, volume: &str) -> ContainerConfig {
    let mut c = container(
        "app",
        image,
        &[
            "sh",
            "-c",
            "echo app-started; trap 'echo app-term; exit 0' TERM; while :; do sleep 1 & wait; done",
        ],
    );
    c.envs = vec![KeyValue {
        key: "E2E_VAR".into(),
        value: "from-cri".into(),
    }];
    c.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: volume.into(),
        ..Default::default()
    }];
    let linux = c.linux.get_or_insert_with(Default::default);
    linux.resources = Some(LinuxContainerResources {
        cpu_period: CPU_PERIOD,
        cpu_quota: CPU_QUOTA,
        cpu_shares: CPU_SHARES,
        memory_limit_in_bytes: MEMORY,
        oom_score_adj: OOM_SCORE_ADJ,
        ..Default::default()
    });
    let sc = linux.security_context.get_or_insert_with(Default::default);
    sc.capabilities = Some(Capability {
        add_capabilities: vec!["NET_BIND_SERVICE".into()],
        drop_capabilities: vec!["ALL".into()],
        add_ambient_capabilities: vec![],
    });
    sc.run_as_user = Some(Int64Value { value: APP_UID });
    sc.readonly_rootfs = true;
    sc.no_new_privs = true;
    sc.seccomp = runtime_default_seccomp();
    c
}

/// A container with the defaults: root, containerd's default capabilities, no seccomp (the
/// CRI's default is unconfined), a writable rootfs. PID 1 ignores SIGTERM, so a stop kills it.
pub fn side(image: &str) -> ContainerConfig {
    container("side", image, &["sleep", "3600"])
}

/// A container whose program does not exist: StartContainer must fail with the runtime's error.
pub fn bad(image: &str) -> ContainerConfig {
    container("bad", image, &["/nonexistent-program"])
}

pub fn updated_resources() -> LinuxContainerResources {
    LinuxContainerResources {
        cpu_period: CPU_PERIOD,
        cpu_quota: NEW_CPU_QUOTA,
        cpu_shares: NEW_CPU_SHARES,
        memory_limit_in_bytes: NEW_MEMORY,
        oom_score_adj: OOM_SCORE_ADJ,
        ..Default::default()
    }
}

/// A container that prints a line and exits 7; `attempt` as the kubelet counts restarts.
pub fn job(image: &str, attempt: u32) -> ContainerConfig {
    let mut c = container("job", image, &["sh", "-c", "echo job-done; exit 7"]);
    if let Some(m) = c.metadata.as_mut() {
        m.attempt = attempt;
    }
    c.log_path = format!("job/{attempt}.log");
    c
}

/// A container that holds far more memory than its limit allows (no swap: memsw = limit).
pub fn oom(image: &str) -> ContainerConfig {
    let mut c = container(
        "oom",
        image,
        &["sh", "-c", "x=$(yes | head -c 200000000); echo survived"],
    );
    let linux = c.linux.get_or_insert_with(Default::default);
    linux.resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 32 << 20,
        ..Default::default()
    });
    c
}

/// A privileged container (as CNI and storage daemons run): every capability containerd has,
/// the host's devices, no seccomp, /sys writable.
pub fn privileged(image: &str) -> ContainerConfig {
    let mut c = container("priv", image, &["sleep", "3600"]);
    let linux = c.linux.get_or_insert_with(Default::default);
    let sc = linux.security_context.get_or_insert_with(Default::default);
    sc.privileged = true;
    c
}
