//! The Task service (containerd.task.v2.Task): each RPC works on the in-memory state and calls
//! the paddock CLI to change the container. Errors are anyhow inside and become ttrpc
//! statuses here, at the boundary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use containerd_shim::api::*;
use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::protos::events::task::*;
use containerd_shim::protos::protobuf::well_known_types::empty::Empty;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics::*;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::protos::types::task::{ProcessInfo, Status};
use containerd_shim::{ExitSignal, Task, TtrpcContext, TtrpcResult};

use crate::events::Events;
use crate::io::StdioPaths;
use crate::options::RuntimeOptions;
use crate::process::{Container, PendingExits, Process};
use crate::runtime::Runtime;
use crate::{console, mount, oom, stats};

/// How long Delete waits for a process's output to drain.
const IO_DRAIN: Duration = Duration::from_secs(5);
/// How long an exit waits for the process's output; longer only where a child the
/// process left behind still holds its stdout.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct State {
    pub containers: HashMap<String, Container>,
    pending: PendingExits,
}

impl State {
    fn container(&self, id: &str) -> TtrpcResult<&Container> {
        self.containers.get(id).ok_or_else(|| not_found(id))
    }

    fn container_mut(&mut self, id: &str) -> TtrpcResult<&mut Container> {
        self.containers.get_mut(id).ok_or_else(|| not_found(id))
    }

    /// The output copies of the running process with this pid. None for the init of a
    /// container without its own pid namespace: its other processes keep stdout open
    /// until the kill --all that follows the exit.
    fn output_drain(&self, pid: u32) -> Option<Arc<crate::io::Drain>> {
        for c in self.containers.values() {
            if c.init.pid == pid && !c.init.exited() {
                return if c.kill_all_on_exit {
                    None
                } else {
                    c.init.io.as_ref().map(|io| io.drain())
                };
            }
            if let Some(p) = c.execs.values().find(|p| p.pid == pid && !p.exited()) {
                return p.io.as_ref().map(|io| io.drain());
            }
        }
        None
    }
}

pub struct Inner {
    state: Mutex<State>,
    exited: Condvar,
    events: Events,
    namespace: String,
    exit: Arc<ExitSignal>,
}

#[derive(Clone)]
pub struct TaskService(Arc<Inner>);

fn status(code: Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}
fn not_found(what: &str) -> ttrpc::Error {
    status(Code::NOT_FOUND, format!("{what}: not found"))
}
fn internal(e: anyhow::Error) -> ttrpc::Error {
    status(Code::UNKNOWN, format!("{e:#}"))
}

impl TaskService {
    pub fn new(events: Events, namespace: String, exit: Arc<ExitSignal>) -> Self {
        let svc = Self(Arc::new(Inner {
            state: Mutex::new(State::default()),
            exited: Condvar::new(),
            events,
            namespace,
            exit,
        }));
        svc.spawn_exit_handler();
        oom::start(svc.0.events.clone());
        svc
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Exits come from the crate's reaper through its monitor; one thread applies them.
    fn spawn_exit_handler(&self) {
        let me = self.clone();
        let sub = match monitor_subscribe(Topic::Pid) {
            Ok(s) => s,
            Err(e) => {
                containerd_shim::error!("subscribe to exits: {e}");
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("exits".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                while let Ok(ev) = sub.rx.recv() {
                    if let Subject::Pid(pid) = ev.subject {
                        if let Ok(pid) = u32::try_from(pid) {
                            me.handle_exit(pid, ev.exit_code);
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            containerd_shim::error!("start the exit handler: {e}");
        }
    }

    fn handle_exit(&self, pid: u32, code: i32) {
        // A client that learns of the exit cancels its FIFO readers (ctr run does so at
        // once): the exit is reported only once the output has reached the FIFOs.
        let drain = self.lock().output_drain(pid);
        if let Some(drain) = drain {
            drain.wait(EXIT_DRAIN);
        }
        let mut st = self.lock();
        if !self.apply_exit(&mut st, pid, code) {
            st.pending.push(pid, code);
        }
    }

    /// Mark the process with this pid exited and send TaskExit; false if no process has it.
    fn apply_exit(&self, st: &mut State, pid: u32, code: i32) -> bool {
        for c in st.containers.values_mut() {
            let cid = c.id.clone();
            if c.init.pid == pid && !c.init.exited() {
                c.init.set_exited(code);
                if c.kill_all_on_exit {
                    // No private pid namespace: the kernel does not end the rest for us.
                    let _ = c.runtime.call(&["kill", "--all", &cid, "9"], None);
                }
                self.send_exit(&cid, &cid, &c.init);
                self.0.exited.notify_all();
                return true;
            }
            if let Some(p) = c.execs.values_mut().find(|p| p.pid == pid && !p.exited()) {
                p.set_exited(code);
                let eid = p.exec_id.clone();
                self.send_exit(&cid, &eid, p);
                self.0.exited.notify_all();
                return true;
            }
        }
        false
    }

    fn send_exit(&self, cid: &str, id: &str, p: &Process) {
        self.0.events.send(
            TASK_EXIT_EVENT_TOPIC,
            TaskExit {
                container_id: cid.to_string(),
                id: id.to_string(),
                pid: p.pid,
                exit_status: p.exit_status,
                exited_at: MessageField::from_option(p.exited_at.clone()),
                ..Default::default()
            },
        );
    }

    fn do_create(&self, req: &CreateTaskRequest) -> TtrpcResult<u32> {
        if !req.checkpoint.is_empty() {
            return Err(status(
                Code::UNIMPLEMENTED,
                "restore from a checkpoint is not supported by paddock",
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        let opts = RuntimeOptions::from_any(req.options.as_ref())
            .map_err(|e| status(Code::INVALID_ARGUMENT, format!("{e:#}")))?;
        let runtime = Runtime::new(&opts, &self.0.namespace, &bundle).map_err(internal)?;
        opts.save(&bundle).map_err(internal)?;
        let mut st = self.lock();
        if st.containers.contains_key(&req.id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("container {}: already exists", req.id),
            ));
        }
        let rootfs = bundle.join("rootfs");
        if !req.rootfs.is_empty() {
            std::fs::create_dir_all(&rootfs).map_err(|e| internal(e.into()))?;
            mount::mount_all(&req.rootfs, &rootfs).map_err(internal)?;
        }
        let undo_mount = |e: ttrpc::Error| {
            if !req.rootfs.is_empty() {
                let _ = mount::unmount_all(&rootfs);
            }
            e
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let (pid, io) = create_init(&runtime, &req.id, &bundle, &stdio).map_err(undo_mount)?;
        let mut init = Process::new("", stdio);
        init.pid = pid;
        init.io = Some(io);
        let c = Container {
            id: req.id.clone(),
            kill_all_on_exit: !has_private_pid_ns(&bundle),
            bundle,
            runtime,
            init,
            execs: HashMap::new(),
            rootfs_mounted: !req.rootfs.is_empty(),
        };
        oom::watch(&req.id, pid);
        st.containers.insert(req.id.clone(), c);
        self.0.events.send(
            TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                checkpoint: req.checkpoint.clone(),
                pid,
                ..Default::default()
            },
        );
        // Killed between create and now: its exit was parked.
        if let Some(code) = st.pending.take(pid) {
            self.apply_exit(&mut st, pid, code);
        }
        Ok(pid)
    }

    fn do_start(&self, req: &StartRequest) -> TtrpcResult<u32> {
        // The lock is held through the runtime call and the start event, so an exit that
        // races with it is handled (and its TaskExit sent) after TaskStart/TaskExecStarted.
        let mut st = self.lock();
        let c = st.container_mut(&req.id)?;
        if req.exec_id.is_empty() {
            if c.init.status != Status::CREATED {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("container {} is not in created state", req.id),
                ));
            }
            c.runtime
                .call(&["start", &req.id], None)
                .map_err(|e| internal(e.context("OCI runtime start failed")))?;
            c.init.status = Status::RUNNING;
            let pid = c.init.pid;
            self.0.events.send(
                TASK_START_EVENT_TOPIC,
                TaskStart {
                    container_id: req.id.clone(),
                    pid,
                    ..Default::default()
                },
            );
            return Ok(pid);
        }
        let (runtime, bundle) = (c.runtime.clone(), c.bundle.clone());
        let p = c
            .execs
            .get_mut(&req.exec_id)
            .ok_or_else(|| not_found(&req.exec_id))?;
        if p.status != Status::CREATED {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("exec {} is not in created state", req.exec_id),
            ));
        }
        let (pid, io) = start_exec(&runtime, &req.id, &bundle, p).map_err(internal)?;
        p.pid = pid;
        p.io = Some(io);
        p.status = Status::RUNNING;
        self.0.events.send(
            TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                pid,
                ..Default::default()
            },
        );
        if let Some(code) = st.pending.take(pid) {
            self.apply_exit(&mut st, pid, code);
        }
        Ok(pid)
    }

    fn do_delete(&self, req: &DeleteRequest) -> TtrpcResult<DeleteResponse> {
        let mut st = self.lock();
        let c = st.container_mut(&req.id)?;
        if !req.exec_id.is_empty() {
            let p = c
                .execs
                .get(&req.exec_id)
                .ok_or_else(|| not_found(&req.exec_id))?;
            if !p.exited() && p.status != Status::CREATED {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("exec {} is still running", req.exec_id),
                ));
            }
            let mut p = c
                .execs
                .remove(&req.exec_id)
                .ok_or_else(|| not_found(&req.exec_id))?;
            drop(st);
            if let Some(io) = p.io.take() {
                io.finish(IO_DRAIN);
            }
            return Ok(delete_response(&p));
        }
        if !c.init.exited() && c.init.status != Status::CREATED {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("container {} is still running", req.id),
            ));
        }
        if let Err(e) = c.runtime.call(&["delete", &req.id], None) {
            if !format!("{e:#}").contains("does not exist") {
                return Err(internal(e.context("OCI runtime delete failed")));
            }
        }
        let Some(mut c) = st.containers.remove(&req.id) else {
            return Err(not_found(&req.id));
        };
        drop(st);
        if let Some(io) = c.init.io.take() {
            io.finish(IO_DRAIN);
        }
        for p in c.execs.values_mut() {
            if let Some(io) = p.io.take() {
                io.finish(Duration::ZERO);
            }
        }
        if c.rootfs_mounted {
            mount::unmount_all(&c.bundle.join("rootfs")).map_err(internal)?;
        }
        oom::forget(&req.id);
        let resp = delete_response(&c.init);
        self.0.events.send(
            TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: req.id.clone(),
                id: req.id.clone(),
                pid: resp.pid,
                exit_status: resp.exit_status,
                exited_at: resp.exited_at.clone(),
                ..Default::default()
            },
        );
        Ok(resp)
    }

    fn do_kill(&self, req: &KillRequest) -> TtrpcResult<()> {
        let st = self.lock();
        let c = st.container(&req.id)?;
        let p = c
            .process(&req.exec_id)
            .ok_or_else(|| not_found(&req.exec_id))?;
        if p.exited() {
            return Err(status(Code::NOT_FOUND, "process already finished"));
        }
        if !req.exec_id.is_empty() {
            let sig =
                i32::try_from(req.signal).map_err(|_| status(Code::INVALID_ARGUMENT, "signal"))?;
            let pid = i32::try_from(p.pid).map_err(|_| status(Code::INTERNAL, "pid"))?;
            // An exec whose start failed has no pid; kill(0) would hit the shim's own
            // process group (the whole pod). The CRI sends this Kill after every failed probe.
            if pid <= 0 {
                return Err(status(Code::FAILED_PRECONDITION, "process not created"));
            }
            // SAFETY: kill(2) with plain integers.
            if unsafe { libc::kill(pid, sig) } != 0 {
                let e = std::io::Error::last_os_error();
                let code = if e.raw_os_error() == Some(libc::ESRCH) {
                    Code::NOT_FOUND
                } else {
                    Code::UNKNOWN
                };
                return Err(status(code, format!("kill exec {}: {e}", req.exec_id)));
            }
            return Ok(());
        }
        let sig = req.signal.to_string();
        let mut args = vec!["kill"];
        if req.all {
            args.push("--all");
        }
        args.extend([req.id.as_str(), sig.as_str()]);
        c.runtime.call(&args, None).map_err(|e| {
            let msg = format!("{e:#}");
            let gone = [
                "not running",
                "no such process",
                "does not exist",
                "process already finished",
            ];
            if gone.iter().any(|g| msg.contains(g)) {
                status(Code::NOT_FOUND, msg)
            } else {
                internal(e)
            }
        })?;
        Ok(())
    }

    fn with_runtime<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container) -> Result<T>,
    ) -> TtrpcResult<T> {
        let mut st = self.lock();
        let c = st.container_mut(id)?;
        f(c).map_err(internal)
    }
}

fn create_init(
    runtime: &Runtime,
    id: &str,
    bundle: &Path,
    stdio: &StdioPaths,
) -> TtrpcResult<(u32, crate::io::ProcessIo)> {
    let mut prep = stdio.prepare().map_err(internal)?;
    let pid_file = bundle.join("init.pid");
    let mut args = vec![
        "create".into(),
        "--bundle".into(),
        bundle.as_os_str().to_owned(),
        "--pid-file".into(),
        pid_file.clone().into_os_string(),
    ];
    if let Some(sock) = &prep.console {
        args.extend(["--console-socket".into(), sock.path().into_os_string()]);
    }
    args.push(id.into());
    let child = std::mem::take(&mut prep.child);
    runtime
        .call_stdio(&args, child)
        .map_err(|e| internal(e.context("OCI runtime create failed")))?;
    let pid = read_pid(&pid_file).map_err(internal)?;
    match prep.finish(stdio) {
        Ok(io) => Ok((pid, io)),
        Err(e) => {
            let _ = runtime.call(&["delete", "--force", id], None);
            Err(internal(e))
        }
    }
}

fn start_exec(
    runtime: &Runtime,
    id: &str,
    bundle: &Path,
    p: &Process,
) -> Result<(u32, crate::io::ProcessIo)> {
    let spec_file = bundle.join(format!(".paddock-exec-{}.json", p.exec_id));
    std::fs::write(&spec_file, &p.spec).context("write the exec process spec")?;
    let pid_file = bundle.join(format!("{}.pid", p.exec_id));
    let result = (|| {
        let mut prep = p.stdio.prepare()?;
        let mut args = vec![
            "exec".into(),
            "--process".into(),
            spec_file.clone().into_os_string(),
            "--detach".into(),
            "--pid-file".into(),
            pid_file.clone().into_os_string(),
        ];
        if let Some(sock) = &prep.console {
            args.extend(["--console-socket".into(), sock.path().into_os_string()]);
        }
        args.push(std::ffi::OsString::from(id));
        let child = std::mem::take(&mut prep.child);
        runtime
            .call_stdio(&args, child)
            .context("OCI runtime exec failed")?;
        let pid = read_pid(&pid_file)?;
        Ok((pid, prep.finish(&p.stdio)?))
    })();
    let _ = std::fs::remove_file(&spec_file);
    result
}

fn read_pid(path: &Path) -> Result<u32> {
    let s = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    s.trim()
        .parse()
        .with_context(|| format!("bad pid in {}", path.display()))
}

/// Whether config.json gives the container a new pid namespace (a pid entry without a path).
fn has_private_pid_ns(bundle: &Path) -> bool {
    let Ok(text) = std::fs::read(bundle.join("config.json")) else {
        return true;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return true;
    };
    v.pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.get("type").and_then(|t| t.as_str()) == Some("pid")
                    && n.get("path")
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .is_empty()
            })
        })
}

fn delete_response(p: &Process) -> DeleteResponse {
    DeleteResponse {
        pid: p.pid,
        exit_status: p.exit_status,
        exited_at: MessageField::from_option(p.exited_at.clone()),
        ..Default::default()
    }
}

impl Task for TaskService {
    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        let pid = self.do_create(&req)?;
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        let pid = self.do_start(&req)?;
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        self.do_delete(&req)
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        let mut st = self.lock();
        let c = st.container_mut(&req.id)?;
        if c.init.exited() {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("container {} is not running", req.id),
            ));
        }
        if c.execs.contains_key(&req.exec_id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("exec {}: already exists", req.exec_id),
            ));
        }
        let mut p = Process::new(
            &req.exec_id,
            StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        );
        p.spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        c.execs.insert(req.exec_id.clone(), p);
        self.0.events.send(
            TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let st = self.lock();
        let c = st.container(&req.id)?;
        let p = c
            .process(&req.exec_id)
            .ok_or_else(|| not_found(&req.exec_id))?;
        let master =
            p.io.as_ref()
                .and_then(|io| io.console())
                .ok_or_else(|| status(Code::FAILED_PRECONDITION, "the process has no terminal"))?;
        console::resize(master, req.width, req.height).map_err(internal)?;
        Ok(Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        let mut st = self.lock();
        let c = st.container_mut(&req.id)?;
        let p = c
            .process_mut(&req.exec_id)
            .ok_or_else(|| not_found(&req.exec_id))?;
        if req.stdin {
            if let Some(io) = p.io.as_mut() {
                io.close_stdin();
            }
        }
        Ok(Empty::new())
    }

    fn state(&self, _: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        let st = self.lock();
        let c = st.container(&req.id)?;
        let p = c
            .process(&req.exec_id)
            .ok_or_else(|| not_found(&req.exec_id))?;
        Ok(StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid,
            status: p.status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: p.exit_status,
            exited_at: MessageField::from_option(p.exited_at.clone()),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        self.with_runtime(&req.id, |c| {
            c.runtime.call(&["pause", &c.id], None)?;
            c.init.status = Status::PAUSED;
            Ok(())
        })?;
        self.0.events.send(
            TASK_PAUSED_EVENT_TOPIC,
            TaskPaused {
                container_id: req.id.clone(),
                ..Default::default()
            },
        );
        Ok(Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.with_runtime(&req.id, |c| {
            c.runtime.call(&["resume", &c.id], None)?;
            if !c.init.exited() {
                c.init.status = Status::RUNNING;
            }
            Ok(())
        })?;
        self.0.events.send(
            TASK_RESUMED_EVENT_TOPIC,
            TaskResumed {
                container_id: req.id.clone(),
                ..Default::default()
            },
        );
        Ok(Empty::new())
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.do_kill(&req)?;
        Ok(Empty::new())
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let out = self.with_runtime(&req.id, |c| {
            c.runtime.call(&["ps", "--format", "json", &c.id], None)
        })?;
        let pids: Vec<u32> = serde_json::from_str(out.trim())
            .map_err(|e| status(Code::UNKNOWN, format!("runtime ps output: {e}")))?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn checkpoint(&self, _: &TtrpcContext, _: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        Err(status(
            Code::UNIMPLEMENTED,
            "checkpoint is not supported by paddock",
        ))
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        self.with_runtime(&req.id, |c| {
            c.runtime
                .call(&["update", "--resources", "-", &c.id], Some(&resources))?;
            Ok(())
        })?;
        Ok(Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let mut st = self.lock();
        loop {
            let c = st.container(&req.id)?;
            let p = c
                .process(&req.exec_id)
                .ok_or_else(|| not_found(&req.exec_id))?;
            if p.exited() {
                return Ok(WaitResponse {
                    exit_status: p.exit_status,
                    exited_at: MessageField::from_option(p.exited_at.clone()),
                    ..Default::default()
                });
            }
            st = self.0.exited.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let pid = {
            let st = self.lock();
            let c = st.container(&req.id)?;
            c.init.pid
        };
        let any = stats::collect(pid).map_err(internal)?;
        Ok(StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let st = self.lock();
        let task_pid = st.containers.get(&req.id).map_or(0, |c| c.init.pid);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            ..Default::default()
        })
    }

    fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> TtrpcResult<Empty> {
        // One shim may serve a whole pod: it leaves only with its last container.
        if self.lock().containers.is_empty() {
            self.0.exit.signal();
        }
        Ok(Empty::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_namespace_decides_kill_all() {
        let d = std::env::temp_dir().join(format!("shim-pidns-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let write = |ns: &str| {
            std::fs::write(
                d.join("config.json"),
                format!(r#"{{"linux":{{"namespaces":[{ns}]}}}}"#),
            )
            .unwrap()
        };
        write(r#"{"type":"mount"},{"type":"pid"}"#);
        assert!(has_private_pid_ns(&d));
        write(r#"{"type":"pid","path":"/proc/1/ns/pid"}"#);
        assert!(!has_private_pid_ns(&d));
        write(r#"{"type":"mount"}"#);
        assert!(!has_private_pid_ns(&d));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
