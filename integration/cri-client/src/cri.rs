//! The two CRI services over containerd's unix socket, with the calls the scenario makes.

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::path::Path;
use std::time::Duration;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub struct Cri {
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
}

/// Output of an ExecSync, decoded.
pub struct Exec {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exec {
    /// The trimmed stdout when the command exited 0, for single-value reads.
    pub fn value(&self) -> Result<&str, String> {
        if self.code == 0 {
            Ok(self.stdout.trim())
        } else {
            Err(format!("exit {}: {}", self.code, self.stderr.trim()))
        }
    }
}

impl Cri {
    pub async fn connect(socket: &Path) -> Result<Cri> {
        let path = socket.to_path_buf();
        // The URI is not used: every connection goes to the socket.
        let channel =
            Endpoint::try_from("http://[::]:0")?
                .timeout(Duration::from_secs(120))
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .with_context(|| format!("connect to {}", socket.display()))?;
        Ok(Cri {
            rt: RuntimeServiceClient::new(channel.clone()),
            img: ImageServiceClient::new(channel),
        })
    }

    pub async fn version(&mut self) -> Result<VersionResponse> {
        let req = VersionRequest {
            version: "v1".into(),
        };
        Ok(self.rt.version(req).await.map_err(status)?.into_inner())
    }

    pub async fn exec(&mut self, id: &str, cmd: &[&str], timeout_s: i64) -> Result<Exec> {
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_s,
        };
        let r = self.rt.exec_sync(req).await.map_err(status)?.into_inner();
        Ok(Exec {
            code: r.exit_code,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        })
    }

    pub async fn container_status(&mut self, id: &str) -> Result<ContainerStatus> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let r = self.rt.container_status(req).await.map_err(status)?;
        r.into_inner().status.context("ContainerStatus: no status")
    }

    pub async fn sandbox_status(&mut self, id: &str) -> Result<PodSandboxStatus> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        let r = self.rt.pod_sandbox_status(req).await.map_err(status)?;
        r.into_inner().status.context("PodSandboxStatus: no status")
    }

    pub async fn stop_container(&mut self, id: &str, timeout_s: i64) -> Result<()> {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_s,
        };
        self.rt.stop_container(req).await.map_err(status)?;
        Ok(())
    }

    pub async fn remove_container(&mut self, id: &str) -> Result<()> {
        let req = RemoveContainerRequest {
            container_id: id.into(),
        };
        self.rt.remove_container(req).await.map_err(status)?;
        Ok(())
    }

    pub async fn stop_sandbox(&mut self, id: &str) -> Result<()> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.stop_pod_sandbox(req).await.map_err(status)?;
        Ok(())
    }

    pub async fn remove_sandbox(&mut self, id: &str) -> Result<()> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.remove_pod_sandbox(req).await.map_err(status)?;
        Ok(())
    }
}

/// A gRPC status as an error whose text is the runtime's message, as the kubelet logs it.
pub fn status(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}
