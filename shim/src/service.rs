//! The shim process: `start` (print the socket address, starting a server unless the pod's
//! shim already answers), `delete` (clean up after a dead shim), and the served Task service.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, ExitSignal, Flags, Shim, StartOpts};

use crate::mount;
use crate::options::RuntimeOptions;
use crate::process::now;
use crate::runtime::Runtime;
use crate::task::TaskService;

/// Annotations that put several containers in one shim (one per pod), as the runc shim does.
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.containerd.runc.v2.group",
];

pub struct Service {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    bundle: String,
}

impl Shim for Service {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Self {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle: args.bundle.clone(),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        start(opts).map_err(|e| containerd_shim::Error::Other(format!("{e:#}")))
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = if self.bundle.is_empty() {
            std::env::current_dir().map_err(|e| containerd_shim::Error::Other(e.to_string()))?
        } else {
            PathBuf::from(&self.bundle)
        };
        cleanup_dead(&self.namespace, &self.id, &bundle)
            .map_err(|e| containerd_shim::Error::Other(format!("{e:#}")))
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    /// Not called: serve.rs builds the service with `task_service`.
    fn create_task_service(&self, _publisher: RemotePublisher) -> TaskService {
        self.task_service(String::new())
    }
}

impl Service {
    /// The task service, sending events to containerd's ttrpc socket at `ttrpc_address`.
    pub fn task_service(&self, ttrpc_address: String) -> TaskService {
        let events = crate::events::Events::new(ttrpc_address, self.namespace.clone());
        TaskService::new(events, self.namespace.clone(), self.exit.clone())
    }
}

/// The `start` action, answered the way containerd 1.6 reads it: the bare socket address on
/// stdout (the crate's own `start` prints a JSON reply that only newer containerd parses).
pub fn start_action(flags: &Flags) -> Result<String> {
    // containerd pipes the runtime options here; Create carries them again, so they are only
    // drained.
    let mut ignored = Vec::new();
    let _ = std::io::stdin().take(1 << 20).read_to_end(&mut ignored);
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        ..Default::default()
    };
    anyhow::ensure!(!opts.namespace.is_empty(), "shim namespace cannot be empty");
    start(opts)
}

fn start(opts: StartOpts) -> Result<String> {
    let grouping = group_id(Path::new("config.json")).unwrap_or_else(|| opts.id.clone());
    let address = opts.socket_address(&grouping);
    // Another container of the same pod: its shim serves this one too.
    if containerd_shim::util::connect(&address)
        .map(close_fd)
        .is_ok()
    {
        containerd_shim::util::write_address(&address).context("write the address file")?;
        return Ok(address);
    }
    let (_, address) =
        containerd_shim::spawn(opts, &grouping, Vec::new()).context("start the shim server")?;
    containerd_shim::util::write_address(&address).context("write the address file")?;
    Ok(address)
}

fn close_fd(fd: std::os::fd::RawFd) {
    // SAFETY: connect() handed us this fd and nothing else uses it.
    drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
}

/// The pod this container belongs to, from its spec's annotations.
fn group_id(config: &Path) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
    let ann = v.get("annotations")?;
    GROUP_ANNOTATIONS.iter().find_map(|k| {
        ann.get(*k)?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

/// After a shim died: force-delete the container, unmount its rootfs, remove the socket,
/// report it killed.
fn cleanup_dead(namespace: &str, id: &str, bundle: &Path) -> Result<DeleteResponse> {
    let opts = RuntimeOptions::load(bundle);
    let runtime = Runtime::new(&opts, namespace, bundle)?;
    if let Err(e) = runtime.call_plain(&["delete", "--force", id]) {
        containerd_shim::warn!("delete --force {id}: {e:#}");
    }
    mount::unmount_all(&bundle.join("rootfs"))?;
    // The dead shim's socket (shared by its pod: removed only when nothing answers on it).
    if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
        if containerd_shim::util::connect(&address)
            .map(close_fd)
            .is_err()
        {
            let _ = std::fs::remove_file(address.trim().trim_start_matches("unix://"));
        }
    }
    let pid = std::fs::read_to_string(bundle.join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Ok(DeleteResponse {
        pid,
        exit_status: 128 + 9,
        exited_at: MessageField::some(now()),
        ..Default::default()
    })
}

/// Print the start reply: the address alone, nothing else (containerd reads all of stdout
/// and stderr as the address).
pub fn print_address(address: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(address.as_bytes())
        .context("write the address")?;
    out.flush().context("write the address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_from_annotations() {
        let d = std::env::temp_dir().join(format!("shim-group-{}", std::process::id()));
        std::fs::write(
            &d,
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb1"}}"#,
        )
        .unwrap();
        assert_eq!(group_id(&d).as_deref(), Some("sb1"));
        std::fs::write(&d, r#"{"annotations":{"io.containerd.runc.v2.group":"g"}}"#).unwrap();
        assert_eq!(group_id(&d).as_deref(), Some("g"));
        std::fs::write(&d, r#"{"annotations":{}}"#).unwrap();
        assert_eq!(group_id(&d), None);
        std::fs::remove_file(&d).unwrap();
    }
}
