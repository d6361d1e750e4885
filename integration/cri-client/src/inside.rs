//! Checks made from inside the running containers through ExecSync, as a probe would.

use crate::cri::Cri;
use crate::probe::{self, status_field};
use crate::report::Report;
use crate::specs;
use anyhow::Result;
use std::path::Path;
use std::time::Instant;

/// The restricted container: user, capabilities, seccomp, no_new_privs, read-only rootfs,
/// the volume, the environment, the limits and the OOM score.
pub async fn app(c: &mut Cri, r: &mut Report, id: &str, volume: &Path) -> Result<()> {
    let uid = c.exec(id, &["id", "-u"], 10).await?;
    r.eq(
        "app: id -u is runAsUser",
        uid.value(),
        Ok(specs::APP_UID.to_string().as_str()),
    );
    let st = c.exec(id, &["cat", "/proc/self/status"], 10).await?;
    let only_bind = probe::cap_mask(&[probe::CAP_NET_BIND_SERVICE]);
    // A non-root user keeps no capability across execve: the CRI gives no ambient set.
    let none = probe::cap_mask(&[]);
    r.eq(
        "app: CapEff and CapPrm are empty (non-root user)",
        (
            status_field(&st.stdout, "CapEff"),
            status_field(&st.stdout, "CapPrm"),
        ),
        (Some(none.as_str()), Some(none.as_str())),
    );
    r.eq(
        "app: CapBnd is the one added capability",
        status_field(&st.stdout, "CapBnd"),
        Some(only_bind.as_str()),
    );
    r.eq(
        "app: Seccomp is 2 (RuntimeDefault filter)",
        status_field(&st.stdout, "Seccomp"),
        Some("2"),
    );
    r.eq(
        "app: NoNewPrivs is 1",
        status_field(&st.stdout, "NoNewPrivs"),
        Some("1"),
    );
    let w = c.exec(id, &["touch", "/rootfs-write"], 10).await?;
    r.check(
        w.code != 0 && w.stderr.contains("Read-only"),
        "app: a write to / fails (read-only rootfs)",
        format_args!("exit {}: {}", w.code, w.stderr.trim()),
    );
    let w = c
        .exec(
            id,
            &["sh", "-c", "echo from-app >/data/file && cat /data/file"],
            10,
        )
        .await?;
    let host = std::fs::read_to_string(volume.join("file")).unwrap_or_default();
    r.check(
        w.value() == Ok("from-app") && host == "from-app\n",
        "app: the volume is writable and its file is on the host",
        format_args!("exec {:?}, host {host:?}", w.value()),
    );
    let env = c.exec(id, &["sh", "-c", "echo $E2E_VAR"], 10).await?;
    r.eq(
        "app: exec sees the container's env",
        env.value(),
        Ok("from-cri"),
    );
    let lim = c.exec(id, &["sh", "-c", probe::CGROUP_LIMITS], 10).await?;
    let got = lim.value().unwrap_or_default();
    let want = probe::expected_limits(
        got,
        specs::MEMORY,
        specs::CPU_QUOTA,
        specs::CPU_PERIOD,
        specs::CPU_SHARES,
    );
    r.eq("app: cgroup limits seen inside", got, want.as_str());
    let oom = c.exec(id, &["cat", "/proc/1/oom_score_adj"], 10).await?;
    r.eq(
        "app: oom_score_adj of its init",
        oom.value(),
        Ok(specs::OOM_SCORE_ADJ.to_string().as_str()),
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = c.exec(id, &["hostname"], 10).await?;
    r.eq(
        "app: hostname is the node's (host network)",
        name.value(),
        Ok(host_name.trim()),
    );
    Ok(())
}

/// The container with defaults: root, containerd's default capabilities, unconfined, writable /.
pub async fn side(c: &mut Cri, r: &mut Report, id: &str) -> Result<()> {
    let uid = c.exec(id, &["id", "-u"], 10).await?;
    r.eq("side: id -u is 0", uid.value(), Ok("0"));
    let st = c.exec(id, &["cat", "/proc/self/status"], 10).await?;
    let defaults = probe::cap_mask(probe::DEFAULT_CAPS);
    r.eq(
        "side: CapEff is containerd's default set",
        status_field(&st.stdout, "CapEff"),
        Some(defaults.as_str()),
    );
    r.eq(
        "side: Seccomp is 0 (unconfined)",
        status_field(&st.stdout, "Seccomp"),
        Some("0"),
    );
    let w = c.exec(id, &["touch", "/rootfs-write"], 10).await?;
    r.eq("side: the rootfs is writable", w.value(), Ok(""));
    Ok(())
}

/// The node's network namespace, the pod's IPC namespace, a PID namespace per container.
pub async fn namespaces(c: &mut Cri, r: &mut Report, app: &str, side: &str) -> Result<()> {
    let mut ns = Vec::new();
    for id in [app, side] {
        let e = c
            .exec(
                id,
                &[
                    "sh",
                    "-c",
                    "for n in net ipc pid; do readlink /proc/self/ns/$n; done",
                ],
                10,
            )
            .await?;
        ns.push(e.stdout.lines().map(String::from).collect::<Vec<_>>());
    }
    let host_net =
        std::fs::read_link("/proc/self/ns/net").map(|p| p.to_string_lossy().into_owned());
    let (a, s) = (&ns[0], &ns[1]);
    if a.len() != 3 || s.len() != 3 {
        r.fail(
            "namespaces: readlink /proc/self/ns/*",
            format_args!("{ns:?}"),
        );
        return Ok(());
    }
    r.eq(
        "namespaces: network is the node's",
        (a[0].as_str(), s[0].as_str()),
        (
            host_net.as_deref().unwrap_or("?"),
            host_net.as_deref().unwrap_or("?"),
        ),
    );
    r.eq(
        "namespaces: IPC is shared by the pod",
        a[1].as_str(),
        s[1].as_str(),
    );
    r.check(
        a[2] != s[2],
        "namespaces: PID is per container",
        format_args!("{} == {}", a[2], s[2]),
    );
    Ok(())
}

/// Exit codes and stderr through ExecSync, and a probe that runs past its timeout.
pub async fn exec_sync(c: &mut Cri, r: &mut Report, id: &str) -> Result<()> {
    let e = c
        .exec(id, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
        .await?;
    r.eq(
        "ExecSync: exit code, stdout and stderr apart",
        (e.code, e.stdout.as_str(), e.stderr.as_str()),
        (3, "out\n", "err\n"),
    );
    // An exec probe whose program is missing: the runtime's error reaches the kubelet.
    match c.exec(id, &["/nonexistent-probe"], 10).await {
        Ok(e) => r.fail(
            "ExecSync of a missing program fails with an error",
            format_args!("exit {}", e.code),
        ),
        Err(e) => {
            let msg = format!("{e:#}");
            r.check(
                msg.contains("nonexistent-probe"),
                "ExecSync of a missing program fails, naming it",
                &msg,
            );
            println!("  .. {msg}");
        }
    }
    let t = Instant::now();
    let res = c.exec(id, &["sleep", "30"], 1).await;
    let took = t.elapsed().as_secs_f64();
    r.check(
        res.is_err() && took < 15.0,
        &format!("ExecSync past its 1 s timeout fails ({took:.1} s)"),
        format_args!("{:?}", res.map(|e| e.code)),
    );
    let ps = c.exec(id, &["ps"], 10).await?;
    r.check(
        !ps.stdout.contains("sleep 30"),
        "ExecSync timeout: the exec'd process is gone",
        &ps.stdout,
    );
    Ok(())
}

/// UpdateContainerResources, then the new limits read from inside.
pub async fn update(c: &mut Cri, r: &mut Report, id: &str) -> Result<()> {
    let req = k8s_cri::v1::UpdateContainerResourcesRequest {
        container_id: id.into(),
        linux: Some(specs::updated_resources()),
        ..Default::default()
    };
    c.rt.update_container_resources(req)
        .await
        .map_err(crate::cri::status)?;
    r.pass("UpdateContainerResources");
    let lim = c.exec(id, &["sh", "-c", probe::CGROUP_LIMITS], 10).await?;
    let got = lim.value().unwrap_or_default();
    let want = probe::expected_limits(
        got,
        specs::NEW_MEMORY,
        specs::NEW_CPU_QUOTA,
        specs::CPU_PERIOD,
        specs::NEW_CPU_SHARES,
    );
    r.eq("app: updated cgroup limits seen inside", got, want.as_str());
    Ok(())
}

/// A privileged container: containerd's own capability set, the host's /dev, unconfined, /sys
/// read-write; and an unprivileged one has none of that.
pub async fn privileged(
    c: &mut Cri,
    r: &mut Report,
    pod: &str,
    sandbox: &k8s_cri::v1::PodSandboxConfig,
    image: &str,
    side: &str,
) -> Result<()> {
    let id = crate::exits::run(c, pod, sandbox, specs::privileged(image)).await?;
    let st = c.exec(&id, &["cat", "/proc/self/status"], 10).await?;
    // containerd runs as root here, with the bounding set this client has.
    let own = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    r.eq(
        "priv: CapEff is containerd's whole bounding set",
        status_field(&st.stdout, "CapEff"),
        status_field(&own, "CapBnd"),
    );
    r.eq(
        "priv: Seccomp is 0",
        status_field(&st.stdout, "Seccomp"),
        Some("0"),
    );
    let dev = c.exec(&id, &["test", "-c", "/dev/kmsg"], 10).await?;
    r.eq(
        "priv: the host's devices are there (/dev/kmsg)",
        dev.code,
        0,
    );
    let dev = c.exec(side, &["test", "-e", "/dev/kmsg"], 10).await?;
    r.check(
        dev.code != 0,
        "side: no host device (/dev/kmsg)",
        "it is there",
    );
    let sys = c
        .exec(&id, &["sh", "-c", "grep ' /sys ' /proc/mounts"], 10)
        .await?;
    r.check(
        sys.stdout.contains(" rw,") || sys.stdout.contains(" rw "),
        "priv: /sys is read-write",
        sys.stdout.trim(),
    );
    c.stop_container(&id, 0).await?;
    c.remove_container(&id).await
}
