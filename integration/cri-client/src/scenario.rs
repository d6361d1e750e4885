//! One pod through one runtime class, in the order the kubelet makes the calls: sandbox, two
//! containers, checks from inside them, stats, a resource update, a container that fails to
//! start, one that exits by itself and is restarted, one the OOM killer ends, then stop and
//! removal of everything.

use crate::cri::{status, Cri};
use crate::exits;
use crate::inside;
use crate::report::Report;
use crate::specs::{self, NAMESPACE, POD};
use crate::steps;
use anyhow::{Context, Result};
use k8s_cri::v1::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Options {
    pub handler: String,
    pub image: String,
    pub work: PathBuf,
    pub hook: Option<PathBuf>,
}

/// Parent of every pod cgroup (`/paddock-e2e-cri/pod<uid>`, as the kubelet's `/kubepods/...`).
pub const CGROUP_ROOT: &str = "/paddock-e2e-cri";

/// Runs the scenario; true when every check passed. A call that fails where the kubelet could
/// not go on ends it, and the pod is then removed as the kubelet would.
pub async fn run(mut c: Cri, o: &Options) -> bool {
    let mut r = Report::default();
    let mut pod = None;
    if let Err(e) = steps(&mut c, o, &mut r, &mut pod).await {
        r.fail("scenario stopped", format!("{e:#}"));
        if let Some(id) = pod {
            let gone = match c.stop_sandbox(&id).await {
                Ok(()) => c.remove_sandbox(&id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = gone {
                r.fail("cleanup: remove the pod", format!("{e:#}"));
            }
        }
    }
    r.all_passed()
}

async fn steps(c: &mut Cri, o: &Options, r: &mut Report, pod: &mut Option<String>) -> Result<()> {
    let h = o.handler.as_str();
    let v = c.version().await.context("Version")?;
    r.eq(
        "Version: runtime name",
        v.runtime_name.as_str(),
        "containerd",
    );
    r.eq("Version: CRI API", v.runtime_api_version.as_str(), "v1");
    runtime_ready(c, r).await?;
    let req = ImageStatusRequest {
        image: Some(image_spec(&o.image)),
        verbose: false,
    };
    let img = c.img.image_status(req).await.map_err(status)?.into_inner();
    r.check(
        img.image.is_some(),
        "ImageStatus: the image is there (no pull)",
        &o.image,
    );

    let uid = format!("{h}-{}", std::process::id());
    let log_dir = o.work.join(format!("logs/{NAMESPACE}_{POD}_{uid}"));
    let volume = o.work.join(format!("volume-{uid}"));
    for d in [&log_dir, &volume] {
        std::fs::create_dir_all(d).with_context(|| format!("mkdir {}", d.display()))?;
    }
    // The app runs as a non-root user and writes to the volume.
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o777))?;
    let config = specs::sandbox(&uid, &path(&log_dir), &format!("{CGROUP_ROOT}/pod{uid}"));

    let t = Instant::now();
    let req = RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: h.into(),
    };
    let pod_id =
        c.rt.run_pod_sandbox(req)
            .await
            .map_err(status)
            .context("RunPodSandbox")?;
    let pod_id = pod_id.into_inner().pod_sandbox_id;
    *pod = Some(pod_id.clone());
    r.pass(&format!("RunPodSandbox ({} ms)", t.elapsed().as_millis()));
    let st = c.sandbox_status(&pod_id).await?;
    r.eq(
        "PodSandboxStatus: READY",
        st.state,
        PodSandboxState::SandboxReady as i32,
    );
    r.eq(
        "PodSandboxStatus: runtime handler",
        st.runtime_handler.as_str(),
        h,
    );
    let net = st.linux.and_then(|l| l.namespaces).and_then(|n| n.options);
    r.eq(
        "PodSandboxStatus: network namespace is the node's",
        net.map(|n| n.network),
        Some(NamespaceMode::Node as i32),
    );

    let app = create(c, &pod_id, &config, specs::app(&o.image, &path(&volume))).await?;
    let side = create(c, &pod_id, &config, specs::side(&o.image)).await?;
    for (name, id) in [("app", &app), ("side", &side)] {
        let t = Instant::now();
        let req = StartContainerRequest {
            container_id: id.clone(),
        };
        c.rt.start_container(req)
            .await
            .map_err(status)
            .with_context(|| format!("StartContainer {name}"))?;
        r.pass(&format!(
            "StartContainer {name} ({} ms)",
            t.elapsed().as_millis()
        ));
        let st = c.container_status(id).await?;
        r.eq(
            &format!("ContainerStatus {name}: RUNNING"),
            st.state,
            ContainerState::ContainerRunning as i32,
        );
    }
    hook(o, &["pod-running", &pod_id, &app, &side]).await?;
    // The hook may have restarted containerd: wait for the CRI as the kubelet would.
    answers_again(c).await?;
    let st = c.sandbox_status(&pod_id).await?;
    r.eq(
        "PodSandboxStatus: still READY",
        st.state,
        PodSandboxState::SandboxReady as i32,
    );
    for (name, id) in [("app", &app), ("side", &side)] {
        let st = c.container_status(id).await?;
        let what = format!("ContainerStatus {name}: still RUNNING");
        r.eq(&what, st.state, ContainerState::ContainerRunning as i32);
    }

    inside::app(c, r, &app, &volume).await?;
    inside::side(c, r, &side).await?;
    inside::namespaces(c, r, &app, &side).await?;
    inside::exec_sync(c, r, &app).await?;
    steps::stats(c, r, &pod_id, &app).await?;
    inside::update(c, r, &app).await?;
    steps::failed_start(c, r, &pod_id, &config, &o.image).await?;
    inside::privileged(c, r, &pod_id, &config, &o.image, &side).await?;
    exits::job(c, r, &pod_id, &config, &o.image).await?;
    exits::oom(c, r, &pod_id, &config, &o.image).await?;

    steps::stop(c, r, "app", &app, 10, 0).await?;
    steps::stop(c, r, "side", &side, 2, 137).await?;
    let log = std::fs::read_to_string(log_dir.join("app/0.log")).unwrap_or_default();
    r.check(
        log.contains(" stdout F app-started") && log.contains(" stdout F app-term"),
        "container log (CRI format) has the app's output from start to SIGTERM",
        &log,
    );
    for (name, id) in [("app", &app), ("side", &side)] {
        c.remove_container(id)
            .await
            .with_context(|| format!("RemoveContainer {name}"))?;
        let gone = c.container_status(id).await.is_err();
        r.check(
            gone,
            &format!("RemoveContainer {name}: status is NotFound afterwards"),
            "still there",
        );
    }

    let t = Instant::now();
    c.stop_sandbox(&pod_id).await.context("StopPodSandbox")?;
    r.pass(&format!("StopPodSandbox ({} ms)", t.elapsed().as_millis()));
    let st = c.sandbox_status(&pod_id).await?;
    r.eq(
        "PodSandboxStatus: NOTREADY after stop",
        st.state,
        PodSandboxState::SandboxNotready as i32,
    );
    c.remove_sandbox(&pod_id)
        .await
        .context("RemovePodSandbox")?;
    *pod = None;
    r.pass("RemovePodSandbox");
    r.check(
        c.sandbox_status(&pod_id).await.is_err(),
        "PodSandboxStatus: NotFound after removal",
        "still there",
    );
    let filter = PodSandboxFilter {
        id: pod_id.clone(),
        ..Default::default()
    };
    let left =
        c.rt.list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .map_err(status)?;
    r.eq(
        "ListPodSandbox: the pod is gone",
        left.into_inner().items.len(),
        0,
    );
    let filter = ContainerFilter {
        pod_sandbox_id: pod_id.clone(),
        ..Default::default()
    };
    let left =
        c.rt.list_containers(ListContainersRequest {
            filter: Some(filter),
        })
        .await
        .map_err(status)?;
    r.eq(
        "ListContainers: no container of the pod left",
        left.into_inner().containers.len(),
        0,
    );
    hook(o, &["pod-removed", &pod_id, &app, &side]).await
}

async fn answers_again(c: &mut Cri) -> Result<()> {
    let start = Instant::now();
    loop {
        match c.version().await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed().as_secs() > 20 => return Err(e.context("Version")),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

async fn runtime_ready(c: &mut Cri, r: &mut Report) -> Result<()> {
    let s =
        c.rt.status(StatusRequest { verbose: false })
            .await
            .map_err(status)?
            .into_inner();
    let conds = s.status.map(|s| s.conditions).unwrap_or_default();
    let ready = conds.iter().any(|c| c.r#type == "RuntimeReady" && c.status);
    r.check(ready, "Status: RuntimeReady", format_args!("{conds:?}"));
    Ok(())
}

fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub async fn create(
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
    let r = c.rt.create_container(req).await.map_err(status);
    Ok(r.with_context(|| format!("CreateContainer {name}"))?
        .into_inner()
        .container_id)
}

/// Runs the hook program with these arguments, if there is one; its stdout is ours.
async fn hook(o: &Options, args: &[&str]) -> Result<()> {
    let Some(prog) = &o.hook else { return Ok(()) };
    let st = tokio::process::Command::new(prog).args(args).status().await;
    st.with_context(|| format!("run hook {}", prog.display()))?;
    Ok(())
}
