use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::Globals;
use crate::cli::CreateArgs;
use crate::linux::cgroups::{self, systemd, Cgroup};
use crate::linux::pidfd::{Kind, PidfdSocket};
use crate::process::{self, Launch};
use crate::spec::{self, Bundle};
use crate::state::{Container, StateDir, Status};

/// A created container: init is blocked on the exec fifo, a child of this process.
pub struct Created {
    pub pid: i32,
    /// Our end of the console socket when `run` proxies the terminal itself.
    pub console: Option<UnixStream>,
    /// Still locked, so `run` can start it without reloading what it just wrote.
    pub state_dir: StateDir,
    pub container: Container,
}

/// Who asks for the container: `create` leaves it created; `run` starts it at once
/// and, in the foreground, proxies a terminal itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Create,
    Run { proxy_console: bool },
}

pub fn create(g: &Globals, args: &CreateArgs) -> Result<()> {
    create_container(g, args, Caller::Create).map(|_| ())
}

/// Validates everything first, then makes the state dir, cgroup and init; on any
/// error after that point all of them are removed again. For `run` in the foreground, a
/// terminal without --console-socket gets a socketpair whose far end is returned.
pub fn create_container(g: &Globals, args: &CreateArgs, caller: Caller) -> Result<Created> {
    let proxy_console = caller
        == Caller::Run {
            proxy_console: true,
        };
    crate::state::validate_id(&args.id)?;
    let mut bundle = spec::load(&args.bundle)?;
    spec::check_no_pivot(&bundle.spec, args.no_pivot)?;
    let terminal = bundle.terminal();
    if terminal && args.console_socket.is_none() && !proxy_console {
        bail!("--console-socket: required when process.terminal is true");
    }
    if proxy_console && args.console_socket.is_some() {
        // As runc: a console socket is for a caller that detaches.
        bail!("--console-socket: cannot be used without --detach (paddock proxies the terminal itself)");
    }
    if !terminal && args.console_socket.is_some() {
        bail!("--console-socket: given but process.terminal is false");
    }
    check_preserved_fds(args.preserve_fds)?;
    let spec = &bundle.spec;
    let tail = crate::linux::exeseal::for_container(process::tail::needs_paddock(
        spec.process().as_ref(),
        spec.linux().as_ref(),
        spec.hooks().as_ref(),
    ))?;
    let mut console = args
        .console_socket
        .as_deref()
        .map(connect_console)
        .transpose()?;
    let pidfd_socket = args
        .pidfd_socket
        .as_deref()
        .map(PidfdSocket::connect)
        .transpose()?;
    let mut our_console = None;
    if terminal && console.is_none() {
        let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
        our_console = Some(ours);
        console = Some(theirs.into());
    }
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    // The systemd driver: names and annotations checked, and the bus reached,
    // before anything is made.
    let mut sysd = match g.systemd_cgroup {
        true => Some(systemd_plan(
            &mut bundle.spec,
            cgroups_path.as_deref(),
            &args.id,
        )?),
        false => None,
    };
    let cg_rel = match &sysd {
        Some(d) => d.unit.path.clone(),
        None => cgroups::relative_path(cgroups_path.as_deref(), &args.id, &g.root)?,
    };

    let sd = StateDir::create(&g.root, &args.id)?;
    if let Err(e) = super::notify_socket::prepare_container(&mut bundle.spec, &sd.dir) {
        let _ = sd.remove();
        return Err(e);
    }
    let mut container = Container {
        id: args.id.clone(),
        recorded: Status::Creating,
        pid: 0,
        start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logger::rfc3339_now(),
        owner: crate::state::owner_name(&sd.dir),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup_path: cg_rel.to_string_lossy().into_owned(),
        systemd_cgroup: g.systemd_cgroup,
        private_pid_ns: bundle.ns.has(libc::CLONE_NEWPID),
        hooks: bundle.spec.hooks().clone(),
        host_rootfs_mount: None,
        attrs: bundle.attrs.clone(),
    };
    let result = sd
        .save(&container)
        .and_then(|()| sd.save_config(&bundle.spec))
        .and_then(|()| super::notify_socket::pass_env(&mut bundle.spec))
        .and_then(|()| match sysd {
            Some(_) => Ok(Cgroup::none()),
            None if g.rootless_cgroups => {
                let explicit = cgroups_path
                    .as_ref()
                    .is_some_and(|p| !p.as_os_str().is_empty());
                crate::linux::rootless::make_cgroup(&cg_rel, explicit, &bundle.spec)
            }
            None => Cgroup::create(&cg_rel)
                .and_then(|cg| cgroups::resources::apply_spec(cg, &bundle.spec)),
        })
        .and_then(|cg| {
            crate::logger::debug(&format!("cgroup {} made, limits set", cg_rel.display()));
            let mut place = |pid: i32| match sysd.as_mut() {
                Some(d) => d.place(&args.id, pid, &bundle.spec),
                None => Ok(()),
            };
            let r = launch(
                &sd,
                &bundle,
                args,
                InitFds { console, tail },
                &cg,
                &mut container,
                &mut place,
            );
            if r.is_err() {
                let _ = cg.remove();
                remove_systemd_cgroup(sysd.as_mut(), &cg_rel);
            }
            r
        });
    let pid = match result {
        Ok(pid) => pid,
        Err(e) => {
            let _ = sd.remove();
            return Err(e);
        }
    };
    crate::logger::debug(&format!("init of {} is pid {pid}, ready", args.id));
    container.recorded = Status::Created;
    // As runc: the caller has the pidfd before create returns.
    let sent = match &pidfd_socket {
        Some(s) => s.send(pid, Kind::Init),
        None => Ok(()),
    };
    // `run` leaves "created" unsaved: it releases init and saves "running" next,
    // holding the state dir's lock from before the first save to after that one,
    // so `state`, `start`, `kill`, `exec`, `pause` and `delete` (which all lock
    // first) could never see it; only the lockless `list` could, for those
    // microseconds. If `run` dies in between, "creating" with init's pid is left,
    // which `delete` (with or without --force) kills and removes just the same.
    let save_created = || match caller {
        Caller::Create => sd.save(&container),
        Caller::Run { .. } => Ok(()),
    };
    let finish = sent
        .and_then(|()| save_created())
        .and_then(|()| match &args.pid_file {
            Some(p) => write_pid_file(p, pid),
            None => Ok(()),
        });
    if let Err(e) = finish {
        process::kill_and_reap(pid);
        if let Ok(cg) = Cgroup::open(&cg_rel) {
            let _ = cg.remove();
        }
        remove_systemd_cgroup(sysd.as_mut(), &cg_rel);
        let _ = sd.remove();
        return Err(e);
    }
    Ok(Created {
        pid,
        console: our_console,
        state_dir: sd,
        container,
    })
}

/// What init gets besides the bundle: its terminal and the exec tail it ends with.
struct InitFds {
    console: Option<OwnedFd>,
    tail: Option<OwnedFd>,
}

fn launch(
    sd: &StateDir,
    bundle: &Bundle,
    args: &CreateArgs,
    fds: InitFds,
    cg: &Cgroup,
    container: &mut Container,
    place: &mut dyn FnMut(i32) -> Result<()>,
) -> Result<i32> {
    let fifo = make_exec_fifo(&sd.fifo_path())?;
    let launch = Launch {
        bundle,
        id: &args.id,
        fifo,
        console: fds.console,
        preserve_fds: args.preserve_fds,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        close_in_child: vec![sd.lock_fd()],
        tail: fds.tail,
    };
    process::spawn_init(launch, cg, container, &mut |c| {
        sd.save(c)?;
        place(c.pid)
    })
}

/// The systemd driver's part of create: the unit, and the manager to ask for it.
struct SystemdCgroup {
    manager: systemd::Manager,
    unit: systemd::Unit,
    started: bool,
}

fn systemd_plan(
    spec: &mut oci_spec::runtime::Spec,
    path: Option<&Path>,
    id: &str,
) -> Result<SystemdCgroup> {
    let unit = systemd::Unit::parse(path, id)?;
    systemd::annotation_props(spec.annotations().as_ref().unwrap_or(&Default::default()))?;
    // As runc: the quota systemd keeps (10 ms steps) is the one the files get too.
    if let Some(mut linux) = spec.linux().clone() {
        if let Some(mut r) = linux.resources().clone() {
            systemd::round_cpu_quota(&mut r);
            linux.set_resources(Some(r));
            spec.set_linux(Some(linux));
        }
    }
    Ok(SystemdCgroup {
        manager: systemd::Manager::connect()?,
        unit,
        started: false,
    })
}

impl SystemdCgroup {
    /// Init (`pid`) waits for its Continue: systemd makes the unit around it,
    /// then the limits go into the files as with cgroupfs.
    fn place(&mut self, id: &str, pid: i32, spec: &oci_spec::runtime::Spec) -> Result<()> {
        let props = systemd::create_props(&mut self.manager, &self.unit, id, pid, spec)?;
        self.manager.start(&self.unit, props)?;
        self.started = true;
        let cg = systemd::adopt(&self.unit, pid)?;
        cgroups::resources::apply_spec(cg, spec)?;
        Ok(())
    }
}

/// After a failed create: the unit stopped (init is dead by now) and what is left of its
/// cgroup. A unit this create did not start (it existed: another container's) is left alone.
fn remove_systemd_cgroup(sysd: Option<&mut SystemdCgroup>, rel: &Path) {
    let Some(d) = sysd.filter(|d| d.started) else {
        return;
    };
    let _ = d.manager.stop(&d.unit.name);
    d.started = false;
    if let Ok(cg) = Cgroup::open(rel) {
        let _ = cg.remove();
    }
}

/// The fifo init blocks on until `start`; opened read-write so init never sees EOF.
fn make_exec_fifo(path: &Path) -> Result<OwnedFd> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("create exec fifo {}", path.display()))?;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open exec fifo {}", path.display()))?;
    Ok(f.into())
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path)
        .with_context(|| format!("--console-socket: connect {}", path.display()))?;
    Ok(s.into())
}

/// Fds 3..3+N must be open, or our own fds could land there and leak into the container.
pub fn check_preserved_fds(n: u32) -> Result<()> {
    for fd in 3..3 + n as i32 {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            bail!("--preserve-fds: fd {fd} is not open");
        }
    }
    Ok(())
}

/// Decimal digits only, no newline, via a temporary file and rename.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("--pid-file: not a file path")?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .with_context(|| format!("--pid-file: create {}", tmp.display()))?;
    f.write_all(pid.to_string().as_bytes())
        .with_context(|| format!("--pid-file: write {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("--pid-file: rename to {}", path.display()))
}
