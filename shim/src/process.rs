//! In-memory state of the containers this shim serves: the init process and the execs of each.
//! State, Wait and the exit events come from here; the runtime is asked only to change things.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::types::task::Status;

use crate::io::{ProcessIo, StdioPaths};
use crate::runtime::Runtime;

pub struct Process {
    pub exec_id: String,
    pub pid: u32,
    pub status: Status,
    pub exit_status: u32,
    pub exited_at: Option<Timestamp>,
    pub stdio: StdioPaths,
    pub io: Option<ProcessIo>,
    /// exec only: the OCI process JSON, until Start runs it.
    pub spec: Vec<u8>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths) -> Self {
        Self {
            exec_id: exec_id.to_string(),
            pid: 0,
            status: Status::CREATED,
            exit_status: 0,
            exited_at: None,
            stdio,
            io: None,
            spec: Vec::new(),
        }
    }

    pub fn set_exited(&mut self, code: i32) {
        self.status = Status::STOPPED;
        self.exit_status = u32::try_from(code).unwrap_or(255);
        self.exited_at = Some(now());
    }

    pub fn exited(&self) -> bool {
        self.status == Status::STOPPED
    }
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub init: Process,
    pub execs: HashMap<String, Process>,
    pub rootfs_mounted: bool,
    /// The container shares the host's (or another) pid namespace: its other processes
    /// are killed when init exits, as containerd's runc shim does.
    pub kill_all_on_exit: bool,
}

impl Container {
    pub fn process(&self, exec_id: &str) -> Option<&Process> {
        if exec_id.is_empty() {
            Some(&self.init)
        } else {
            self.execs.get(exec_id)
        }
    }

    pub fn process_mut(&mut self, exec_id: &str) -> Option<&mut Process> {
        if exec_id.is_empty() {
            Some(&mut self.init)
        } else {
            self.execs.get_mut(exec_id)
        }
    }
}

/// Exits of pids not known yet (an exec that ended before its pid file was read). Entries
/// expire: the runtime CLI's own exits land here too and are never claimed.
#[derive(Default)]
pub struct PendingExits(Vec<(u32, i32, Instant)>);

impl PendingExits {
    const KEEP: Duration = Duration::from_secs(30);

    pub fn push(&mut self, pid: u32, code: i32) {
        self.0.retain(|e| e.2.elapsed() < Self::KEEP);
        self.0.push((pid, code, Instant::now()));
    }

    pub fn take(&mut self, pid: u32) -> Option<i32> {
        let i = self.0.iter().position(|e| e.0 == pid)?;
        Some(self.0.swap_remove(i).1)
    }
}

pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_exits_are_claimed_once() {
        let mut p = PendingExits::default();
        p.push(10, 3);
        p.push(11, 0);
        assert_eq!(p.take(10), Some(3));
        assert_eq!(p.take(10), None);
        assert_eq!(p.take(11), Some(0));
    }
}
