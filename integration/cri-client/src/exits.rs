//! Containers that end on their own, as the kubelet sees them through ContainerStatus: an exit
//! code with its reason, a restart (a new attempt in the same pod), and the cgroup OOM killer.

use crate::cri::{status, Cri};
use crate::report::Report;
use crate::specs;
use anyhow::{bail, Context, Result};
use k8s_cri::v1::*;
use std::time::{Duration, Instant};

/// A container that exits 7 by itself, then its restart as attempt 1 (the kubelet's restart
/// policy), in the same pod and so the same shim.
pub async fn job(
    c: &mut Cri,
    r: &mut Report,
    pod: &str,
    sandbox: &PodSandboxConfig,
    image: &str,
) -> Result<()> {
    for attempt in [0, 1] {
        let cfg = specs::job(image, attempt);
        let id = run(c, pod, sandbox, cfg).await?;
        let st = wait_exited(c, &id).await?;
        let what = format!("job attempt {attempt} exits by itself: exit code, reason");
        r.eq(&what, (st.exit_code, st.reason.as_str()), (7, "Error"));
        r.check(
            st.finished_at > 0,
            &format!("job attempt {attempt}: finished_at is set"),
            "0",
        );
        c.remove_container(&id)
            .await
            .context("RemoveContainer job")?;
    }
    Ok(())
}

/// A container past its memory limit is killed by the OOM killer and reported as OOMKilled.
pub async fn oom(
    c: &mut Cri,
    r: &mut Report,
    pod: &str,
    sandbox: &PodSandboxConfig,
    image: &str,
) -> Result<()> {
    let id = run(c, pod, sandbox, specs::oom(image)).await?;
    let st = wait_exited(c, &id).await?;
    r.eq(
        "a container past its memory limit: exit code, reason",
        (st.exit_code, st.reason.as_str()),
        (137, "OOMKilled"),
    );
    c.remove_container(&id).await.context("RemoveContainer oom")
}

pub async fn run(
    c: &mut Cri,
    pod: &str,
    sandbox: &PodSandboxConfig,
    cfg: ContainerConfig,
) -> Result<String> {
    let name = cfg
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let req = CreateContainerRequest {
        pod_sandbox_id: pod.into(),
        config: Some(cfg),
        sandbox_config: Some(sandbox.clone()),
    };
    let id = c.rt.create_container(req).await.map_err(status);
    let id = id
        .with_context(|| format!("CreateContainer {name}"))?
        .into_inner()
        .container_id;
    let req = StartContainerRequest {
        container_id: id.clone(),
    };
    c.rt.start_container(req)
        .await
        .map_err(status)
        .with_context(|| format!("StartContainer {name}"))?;
    Ok(id)
}

/// Polls ContainerStatus as the kubelet's PLEG does until the container has exited.
async fn wait_exited(c: &mut Cri, id: &str) -> Result<ContainerStatus> {
    let start = Instant::now();
    loop {
        let st = c.container_status(id).await?;
        if st.state == ContainerState::ContainerExited as i32 {
            return Ok(st);
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("container {id} still in state {} after 20 s", st.state);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
