//! `<root>/<id>/`: state.json (written atomically), the per-container lock, the
//! exec fifo, and liveness by pid + process start time so a reused pid is never
//! taken for the container.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

const STATE_FILE: &str = "state.json";
/// The config as it was at create: later edits of the bundle must not affect the container.
const CONFIG_FILE: &str = "config.json";
const FIFO_FILE: &str = "exec.fifo";
const MAX_ID_LEN: usize = 255;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What paddock remembers about a container between commands.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Container {
    pub id: String,
    /// The status last recorded; `status()` corrects it with liveness.
    pub recorded: Status,
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22).
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup_path: String,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Whether the container has its own pid namespace (kill --all / delete need it).
    #[serde(default)]
    pub private_pid_ns: bool,
    /// Hooks from config.json at create time; later edits of the bundle do not count.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Set when the container has no mount namespace of its own.
    #[serde(default)]
    pub host_rootfs_mount: Option<HostRootfsMount>,
    /// config.json's scheduling, affinity, personality and memory policy, which
    /// every exec gets unless its process.json says otherwise.
    #[serde(default)]
    pub attrs: crate::spec::attrs::Attrs,
}

/// A container in the host mount namespace has its rootfs bound onto itself
/// there, with all its mounts under that bind. `delete` detaches whatever is
/// stacked on `path` above the mount `below` that was there before create.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HostRootfsMount {
    pub path: PathBuf,
    pub below: u64,
}

/// OCI state as `paddock state` prints it (plus runc's `created` and `owner`).
#[derive(Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'static str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

pub const OCI_VERSION: &str = "1.3.0";
/// The state root for root when --root is not given; it does not depend on the environment.
pub const DEFAULT_ROOT: &str = "/run/paddock";

impl Container {
    pub fn status(&self) -> Status {
        match self.recorded {
            Status::Stopped => Status::Stopped,
            _ if self.pid <= 0 => match self.recorded {
                Status::Creating => Status::Creating,
                _ => Status::Stopped,
            },
            recorded => {
                if is_alive(self.pid, self.start_time) {
                    // A frozen cgroup is "paused" whatever was recorded before.
                    if crate::linux::cgroups::is_paused(&self.cgroup_path) {
                        return Status::Paused;
                    }
                    recorded
                } else {
                    Status::Stopped
                }
            }
        }
    }

    pub fn oci_state(&self) -> OciState<'_> {
        self.oci_state_as(self.status())
    }

    /// The state document with `status` given rather than looked up (the lookup
    /// reads /proc and the freezer).
    fn oci_state_as(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }

    /// The state JSON given to hooks on stdin, with the status the hook point implies.
    pub fn hook_state(&self, status: Status) -> String {
        serde_json::to_string(&self.oci_state_as(status)).unwrap_or_default()
    }
}

/// A locked container state directory. The lock (flock on the directory) is held
/// until this value is dropped; commands on other IDs never wait on it.
#[derive(Debug)]
pub struct StateDir {
    pub dir: PathBuf,
    lock: File,
}

pub fn validate_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if id.is_empty() || !ok_chars || id == "." || id == ".." || id.len() > MAX_ID_LEN {
        bail!(
            "invalid container ID {:?}: use 1 to {MAX_ID_LEN} letters, digits, '_', '+', '-' or '.', not \".\" or \"..\"",
            truncate(id, 64)
        );
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl StateDir {
    /// Makes `<root>/<id>` (0700) and locks it; an existing one is "container ID already exists".
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("create state root {}", root.display()))?;
        let dir = root.join(id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists.into())
            }
            Err(e) => return Err(e).with_context(|| format!("create state dir {}", dir.display())),
        }
        let lock = lock_dir(&dir)?;
        Ok(StateDir { dir, lock })
    }

    /// Opens and locks an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let dir = root.join(id);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(_) if !dir.exists() => return Err(RuntimeError::NotExist.into()),
            Err(e) => return Err(e),
        };
        // A delete that held the lock before us may have removed the directory.
        if !dir.join(STATE_FILE).exists() && !dir.exists() {
            return Err(RuntimeError::NotExist.into());
        }
        Ok(StateDir { dir, lock })
    }

    pub fn load(&self) -> Result<Container> {
        load_file(&self.dir.join(STATE_FILE))
    }

    /// Writes state.json via a temporary file and rename, so readers never see half of it.
    pub fn save(&self, c: &Container) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(c).context("encode state")?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(&data)
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, self.dir.join(STATE_FILE)).context("rename state.json into place")?;
        crate::logger::debug(&format!(
            "saved state of {}: {:?}, pid {}",
            c.id, c.recorded, c.pid
        ));
        Ok(())
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.dir.join(FIFO_FILE)
    }

    pub fn save_config(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        let data = serde_json::to_vec(spec).context("encode config")?;
        fs::write(self.dir.join(CONFIG_FILE), data).context("save config copy")
    }

    pub fn load_config(&self) -> Result<oci_spec::runtime::Spec> {
        let data = fs::read(self.dir.join(CONFIG_FILE)).context("read saved config")?;
        crate::spec::parse(&data)
    }

    pub fn lock_fd(&self) -> i32 {
        self.lock.as_raw_fd()
    }

    /// Removes the directory and everything in it (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("remove {}", self.dir.display())),
        }
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .with_context(|| format!("open state dir {}", dir.display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context("lock state dir");
    }
    Ok(f)
}

fn load_file(path: &Path) -> Result<Container> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RuntimeError::NotExist.into())
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
}

/// Every container under `root`, read without locking (as `list` needs).
pub fn list(root: &Path) -> Result<Vec<Container>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    let mut out: Vec<Container> = entries
        .flatten()
        .filter_map(|e| load_file(&e.path().join(STATE_FILE)).ok())
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// (state char, start time) from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let data = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&data)
}

fn parse_stat(data: &str) -> Option<(char, u64)> {
    // The command name may contain spaces and ')', so split after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 overall is the 20th after the command name.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// True when `pid` is still the process we started (same start time) and not a zombie.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((state, start)) if start == start_time && state != 'Z' && state != 'X')
}

/// The owner name of the state directory's uid, from /etc/passwd (no NSS in a static binary).
pub fn owner_name(path: &Path) -> String {
    let uid = fs::metadata(path).map(|m| m.uid()).unwrap_or(0);
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .next()
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["a", "abc-1.2_x+y", &"a".repeat(255)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\nb",
            "a b",
            &"a".repeat(256),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
    }

    #[test]
    fn own_process_is_alive_and_reused_pid_is_not() {
        let pid = std::process::id() as i32;
        let (_, start) = proc_stat(pid).unwrap();
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1));
    }

    #[test]
    fn save_is_atomic_and_lock_serializes() {
        let root = std::env::temp_dir().join(format!("paddock-state-test-{}", std::process::id()));
        let sd = StateDir::create(&root, "c1").unwrap();
        assert!(matches!(
            StateDir::create(&root, "c1")
                .unwrap_err()
                .downcast_ref::<RuntimeError>(),
            Some(RuntimeError::Exists)
        ));
        let c = Container {
            id: "c1".into(),
            recorded: Status::Created,
            pid: 0,
            start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "t".into(),
            owner: "root".into(),
            annotations: HashMap::new(),
            cgroup_path: "/paddock/c1".into(),
            systemd_cgroup: false,
            private_pid_ns: true,
            hooks: None,
            host_rootfs_mount: None,
            attrs: Default::default(),
        };
        sd.save(&c).unwrap();
        assert_eq!(sd.load().unwrap().status(), Status::Stopped);
        assert_eq!(list(&root).unwrap().len(), 1);
        sd.remove().unwrap();
        assert!(matches!(
            StateDir::open(&root, "c1")
                .unwrap_err()
                .downcast_ref::<RuntimeError>(),
            Some(RuntimeError::NotExist)
        ));
        fs::remove_dir_all(&root).unwrap();
    }
}
