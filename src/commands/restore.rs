//! `restore`: a new container from CRIU images, made a normal paddock container
//! (state, cgroup, exec, kill, delete) as runc's restore does. In the
//! foreground it waits for the restored init and deletes the container after.

use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType as T, Spec};

use super::checkpoint::{base_opts, image_path, open_dir, work_dir, DESCRIPTORS_FILE};
use super::Globals;
use crate::cli::RestoreArgs;
use crate::linux::cgroups::{self, Cgroup};
use crate::linux::criu::mounts::{self, RestoreRoot};
use crate::linux::criu::rpc::{Opts, ReqType};
use crate::linux::criu::swrk::CriuStdio;
use crate::linux::criu::{self, Job};
use crate::linux::{hooks, tty};
use crate::spec::{self, Bundle};
use crate::state::{Container, StateDir, Status};

const RESTORE_LOG: &str = "restore.log";

/// What restore checked and opened before anything was made.
struct Inputs {
    bundle: Bundle,
    images: PathBuf,
    image_dir: File,
    descriptors: Vec<String>,
    opts: Opts,
    cg_rel: PathBuf,
}

pub fn restore(g: &Globals, a: &RestoreArgs) -> Result<i32> {
    crate::state::validate_id(&a.id)?;
    let bundle = spec::load(&a.bundle)?;
    let terminal = bundle.terminal();
    if terminal && a.detach && a.console_socket.is_none() {
        bail!("--console-socket: required when process.terminal is true");
    }
    if !terminal && a.console_socket.is_some() {
        bail!("--console-socket: given but process.terminal is false");
    }
    let images = image_path(&a.criu)?;
    // Unlike runc, a missing image directory is not created: nothing is left behind.
    let image_dir = open_dir(&images).context("--image-path")?;
    let descriptors = read_descriptors(&images)?;
    let version = criu::version()?;
    criu::check_version(version, criu::MIN_VERSION)?;
    let annotations = bundle.spec.annotations().clone().unwrap_or_default();
    let mut opts = base_opts(&a.criu, &annotations)?;
    for (flag, value, field) in [
        ("--lsm-profile", &a.lsm_profile, &mut opts.lsm_profile),
        (
            "--lsm-mount-context",
            &a.lsm_mount_context,
            &mut opts.lsm_mount_context,
        ),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            if version < 31600 {
                bail!("{flag} requires at least CRIU 3.16");
            }
            *field = Some(v.clone());
        }
    }
    if a.criu.lazy_pages {
        criu::check_features(criu::rpc::Features {
            mem_track: false,
            lazy_pages: true,
        })?;
    }
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    if g.systemd_cgroup {
        // The restored tree would have to be moved into a transient unit after CRIU has
        // placed it; until that is written, say so rather than restore outside systemd.
        bail!("restore: --systemd-cgroup is not supported (restore with the cgroupfs driver)");
    }
    let cg_rel = cgroups::relative_path(cgroups_path.as_deref(), &a.id, &g.root)?;
    if !a.detach && !a.no_subreaper {
        // As run: orphans of the restored tree are ours to reap.
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            bail!(
                "prctl PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let console: Option<UnixStream> = match &a.console_socket {
        Some(p) => Some(
            UnixStream::connect(p)
                .with_context(|| format!("--console-socket: connect {}", p.display()))?,
        ),
        None => None,
    };
    // In the foreground a terminal without --console-socket is proxied by us.
    let mut proxy = None;
    let console = match console {
        Some(c) => Some(c),
        None if terminal => {
            let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
            proxy = Some(ours);
            Some(theirs)
        }
        None => None,
    };
    let inputs = Inputs {
        bundle,
        images,
        image_dir,
        descriptors,
        opts,
        cg_rel,
    };
    let (sd, container) = make_container(g, a, inputs, console.as_ref())?;
    let pid = container.pid;
    if let Some(p) = &a.pid_file {
        if let Err(e) = super::create::write_pid_file(p, pid) {
            let _ = super::delete::destroy(sd, &container);
            return Err(e);
        }
    }
    if a.detach {
        return Ok(0);
    }
    // Unlocked from here: kill, exec and state must work while it runs.
    drop(sd);
    super::run::forward_signals_to(pid);
    let code = match proxy {
        Some(sock) => {
            let master = super::console_proxy::receive_master(&sock)?;
            super::console_proxy::proxy(master, pid)?
        }
        None => crate::process::wait_exit_code(pid)?,
    };
    match StateDir::open(&g.root, &a.id).and_then(|sd| sd.load().map(|c| (sd, c))) {
        Ok((sd, c)) => {
            if let Err(e) = super::delete::destroy(sd, &c) {
                crate::logger::warn(&format!("remove container {}: {e:#}", a.id));
            }
        }
        Err(e) => crate::logger::warn(&format!("remove container {}: {e:#}", a.id)),
    }
    Ok(code)
}

/// The state dir, cgroup and restored tree; on any error all of them go again.
fn make_container(
    g: &Globals,
    a: &RestoreArgs,
    inp: Inputs,
    console: Option<&UnixStream>,
) -> Result<(StateDir, Container)> {
    let sd = StateDir::create(&g.root, &a.id)?;
    let spec = &inp.bundle.spec;
    let mut c = Container {
        id: a.id.clone(),
        recorded: Status::Creating,
        pid: 0,
        start_time: 0,
        bundle: inp.bundle.dir.clone(),
        rootfs: inp.bundle.rootfs.clone(),
        created: crate::logger::rfc3339_now(),
        owner: crate::state::owner_name(&sd.dir),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup_path: inp.cg_rel.to_string_lossy().into_owned(),
        systemd_cgroup: g.systemd_cgroup,
        private_pid_ns: inp.bundle.ns.has(libc::CLONE_NEWPID),
        hooks: spec.hooks().clone(),
        host_rootfs_mount: None,
        attrs: inp.bundle.attrs.clone(),
    };
    let made = sd
        .save(&c)
        .and_then(|()| sd.save_config(spec))
        .and_then(|()| Cgroup::create(&inp.cg_rel))
        .and_then(|cg| cgroups::resources::apply_spec(cg, spec));
    let cg = match made {
        Ok(cg) => cg,
        Err(e) => {
            let _ = sd.remove();
            return Err(e);
        }
    };
    match run_criu(&sd, a, &inp, console, &cg, &mut c) {
        Ok(()) => Ok((sd, c)),
        Err(e) => {
            if c.pid > 0 {
                crate::process::kill_and_reap(c.pid);
            }
            super::delete::kill_everything(&c, &cg);
            cg.discard();
            let _ = sd.remove();
            Err(e)
        }
    }
}

fn run_criu(
    sd: &StateDir,
    a: &RestoreArgs,
    inp: &Inputs,
    console: Option<&UnixStream>,
    cg: &Cgroup,
    c: &mut Container,
) -> Result<()> {
    let spec = &inp.bundle.spec;
    let root = RestoreRoot::bind(&inp.bundle.rootfs, &sd.dir)?;
    mounts::prepare_mountpoints(spec, &inp.bundle.dir, &inp.bundle.rootfs)?;
    let mut opts = Opts {
        images_dir_fd: inp.image_dir.as_raw_fd(),
        log_file: RESTORE_LOG.to_string(),
        root: Some(root.path.to_string_lossy().into_owned()),
        rst_sibling: true,
        evasive_devices: true,
        ext_mnt: mounts::for_restore(spec, &inp.bundle.dir, &inp.bundle.rootfs, &inp.cg_rel),
        ..Opts::default()
    };
    copy_common(&inp.opts, &mut opts);
    let (work, log_dir) = work_dir(&a.criu, &inp.images)?;
    opts.work_dir_fd = work.as_ref().map(|f| f.as_raw_fd());
    let ns_files = namespaces(spec, &mut opts)?;
    for (i, d) in inp.descriptors.iter().enumerate() {
        if d.contains("pipe:") {
            opts.inherit_fd.push((d.clone(), i as i32));
        }
    }
    let job = Job {
        kind: ReqType::Restore,
        opts,
        stdio: CriuStdio::Inherit,
        extra_fds: ns_files.iter().map(|f| f.as_fd()).collect(),
        log: &log_dir.join(RESTORE_LOG),
    };
    let mut started = |criu_pid: i32, opts: &mut Opts| -> Result<()> {
        join_cgroup(cg, criu_pid)?;
        opts.cg_root = cgroup_roots(criu_pid, cg.is_pure_v2())?;
        Ok(())
    };
    let mut notify = |script: &str, pid: i32, fd: Option<OwnedFd>| -> Result<()> {
        match script {
            "setup-namespaces" => run_create_hooks(c, spec, pid),
            "post-restore" => {
                let (_, start) = crate::state::proc_stat(pid).context("restored init is gone")?;
                c.pid = pid;
                c.start_time = start;
                c.recorded = Status::Running;
                c.created = crate::logger::rfc3339_now();
                sd.save(c)
            }
            "orphan-pts-master" => {
                let master = fd.context("criu sent no pty master")?;
                let sock = console.context("a terminal needs --console-socket")?;
                tty::send_to_console_socket(sock.as_fd(), master.as_fd())
            }
            _ => Ok(()),
        }
    };
    let resp = job.run(&mut started, &mut notify)?;
    drop(root);
    if c.pid <= 0 {
        bail!(
            "criu restored pid {} but sent no post-restore notification",
            resp.restored_pid.unwrap_or(0)
        );
    }
    Ok(())
}

/// The flags restore shares with checkpoint, from `base_opts`.
fn copy_common(from: &Opts, to: &mut Opts) {
    to.log_level = from.log_level;
    to.manage_cgroups_mode = from.manage_cgroups_mode;
    to.shell_job = from.shell_job;
    to.ext_unix_sk = from.ext_unix_sk;
    to.tcp_established = from.tcp_established;
    to.file_locks = from.file_locks;
    to.empty_ns = from.empty_ns;
    to.orphan_pts_master = from.orphan_pts_master;
    to.auto_dedup = from.auto_dedup;
    to.lazy_pages = from.lazy_pages;
    to.config_file = from.config_file.clone();
    to.lsm_profile = from.lsm_profile.clone();
    to.lsm_mount_context = from.lsm_mount_context.clone();
}

/// Namespaces given by path: a network or pid namespace is handed to CRIU as an
/// inherited fd under the key dump recorded; the others are joined by path.
fn namespaces(spec: &Spec, opts: &mut Opts) -> Result<Vec<File>> {
    let mut files = Vec::new();
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in list {
        let Some(path) = ns.path() else { continue };
        let (name, key) = match ns.typ() {
            T::Network => ("net", Some("extRootNetNS")),
            T::Pid => ("pid", Some("extRootPidNS")),
            T::Mount => ("mnt", None),
            T::Uts => ("uts", None),
            T::Ipc => ("ipc", None),
            T::User => ("user", None),
            T::Time => ("time", None),
            T::Cgroup => bail!("do not know how to handle namespace cgroup given by path"),
        };
        match key {
            Some(key) => {
                let f = File::open(path).with_context(|| {
                    format!(
                        "requested {name} namespace {} does not exist",
                        path.display()
                    )
                })?;
                // criu's fds: 3 is the socket, the inherited ones follow from 4.
                opts.inherit_fd
                    .push((key.to_string(), 4 + files.len() as i32));
                files.push(f);
            }
            None => opts
                .join_ns
                .push((name.to_string(), path.to_string_lossy().into_owned())),
        }
    }
    Ok(files)
}

/// criu itself goes into the container's cgroup, so that what it restores lands there.
fn join_cgroup(cg: &Cgroup, pid: i32) -> Result<()> {
    for d in &cg.dirs {
        let f = d.join("cgroup.procs");
        fs::write(&f, pid.to_string()).with_context(|| format!("join cgroup {}", f.display()))?;
    }
    Ok(())
}

/// CRIU's cgroup roots: the cgroup criu now sits in, per controller on v1, for
/// every controller on pure v2.
fn cgroup_roots(pid: i32, pure_v2: bool) -> Result<Vec<(Option<String>, String)>> {
    let path = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(p)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            if pure_v2 {
                out.push((None, p.to_string()));
            }
            continue;
        }
        for ctrl in ctrls.split(',') {
            out.push((Some(ctrl.to_string()), p.to_string()));
        }
    }
    Ok(out)
}

/// As runc: prestart and createRuntime hooks run once CRIU has made the namespaces.
fn run_create_hooks(c: &Container, spec: &Spec, pid: i32) -> Result<()> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    let mut state = c.clone();
    state.pid = pid;
    let json = state.hook_state(Status::Creating);
    #[allow(deprecated)]
    let prestart = h.prestart().as_deref().unwrap_or_default();
    hooks::run_hooks("prestart", prestart, &json)?;
    let create_runtime = h.create_runtime().as_deref().unwrap_or_default();
    hooks::run_hooks("createRuntime", create_runtime, &json)
}

/// descriptors.json from the images: where init's fds 0-2 pointed at dump.
fn read_descriptors(images: &Path) -> Result<Vec<String>> {
    let path = images.join(DESCRIPTORS_FILE);
    let data = fs::read(&path).with_context(|| format!("--image-path: read {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
}
