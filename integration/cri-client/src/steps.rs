//! Steps of the scenario that make their own checks: stats, a container whose start fails, and
//! StopContainer with its grace period.

use crate::cri::{status, Cri};
use crate::report::Report;
use crate::scenario::create;
use crate::specs;
use anyhow::{Context, Result};
use k8s_cri::v1::*;
use std::time::Instant;

pub async fn stats(c: &mut Cri, r: &mut Report, pod: &str, app: &str) -> Result<()> {
    let req = ContainerStatsRequest {
        container_id: app.into(),
    };
    let st =
        c.rt.container_stats(req)
            .await
            .map_err(status)
            .context("ContainerStats")?;
    let st = st.into_inner().stats.unwrap_or_default();
    let cpu = st
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value);
    r.check(
        cpu.unwrap_or(0) > 0,
        "ContainerStats: CPU usage",
        format_args!("{cpu:?}"),
    );
    let mem = st.memory.and_then(|m| m.working_set_bytes).map(|v| v.value);
    r.check(
        mem.unwrap_or(0) > 0,
        "ContainerStats: memory working set",
        format_args!("{mem:?}"),
    );
    let filter = ContainerStatsFilter {
        pod_sandbox_id: pod.into(),
        ..Default::default()
    };
    let req = ListContainerStatsRequest {
        filter: Some(filter),
    };
    let list =
        c.rt.list_container_stats(req)
            .await
            .map_err(status)
            .context("ListContainerStats")?;
    let list = list.into_inner().stats;
    let with_cpu = list
        .iter()
        .filter(|s| {
            s.cpu
                .as_ref()
                .and_then(|c| c.usage_core_nano_seconds.as_ref())
                .is_some()
        })
        .count();
    r.eq(
        "ListContainerStats: both containers of the pod, with CPU usage",
        (list.len(), with_cpu),
        (2, 2),
    );
    Ok(())
}

/// The kubelet's RunContainerError: create succeeds, start fails with the runtime's reason.
pub async fn failed_start(
    c: &mut Cri,
    r: &mut Report,
    pod: &str,
    sandbox: &PodSandboxConfig,
    image: &str,
) -> Result<()> {
    let bad = create(c, pod, sandbox, specs::bad(image)).await?;
    let req = StartContainerRequest {
        container_id: bad.clone(),
    };
    match c.rt.start_container(req).await.map_err(status) {
        Ok(_) => r.fail("StartContainer of a missing program fails", "it started"),
        Err(e) => {
            let msg = format!("{e:#}");
            r.check(
                msg.contains("nonexistent-program"),
                "StartContainer of a missing program fails, naming it",
                &msg,
            );
            println!("  .. {msg}");
        }
    }
    let st = c.container_status(&bad).await?;
    r.check(
        st.state != ContainerState::ContainerRunning as i32,
        "ContainerStatus of the failed container: not running",
        format_args!("state {}", st.state),
    );
    c.remove_container(&bad)
        .await
        .context("RemoveContainer bad")
}

/// StopContainer with a grace period; the exit code tells SIGTERM handled (0) from SIGKILL (137).
pub async fn stop(
    c: &mut Cri,
    r: &mut Report,
    name: &str,
    id: &str,
    grace: i64,
    code: i32,
) -> Result<()> {
    let t = Instant::now();
    c.stop_container(id, grace)
        .await
        .with_context(|| format!("StopContainer {name}"))?;
    let took = t.elapsed();
    let st = c.container_status(id).await?;
    r.eq(
        &format!("StopContainer {name}: EXITED"),
        st.state,
        ContainerState::ContainerExited as i32,
    );
    r.eq(
        &format!("StopContainer {name}: exit code"),
        st.exit_code,
        code,
    );
    let in_time = if code == 0 {
        took.as_secs() < 5
    } else {
        took.as_secs_f64() >= grace as f64 - 0.5 && took.as_secs() < grace as u64 + 8
    };
    r.check(
        in_time,
        &format!(
            "StopContainer {name} (grace {grace}s) took {} ms",
            took.as_millis()
        ),
        "out of range",
    );
    Ok(())
}
