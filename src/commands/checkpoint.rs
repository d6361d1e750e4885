//! `checkpoint`: dump a running container with CRIU (runc's flags and defaults);
//! unless --leave-running or --pre-dump, the container is then destroyed.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::Globals;
use crate::cli::{CheckpointArgs, CriuArgs};
use crate::linux::cgroups::Cgroup;
use crate::linux::criu::rpc::{CgMode, Features, Opts, ReqType};
use crate::linux::criu::swrk::CriuStdio;
use crate::linux::criu::{self, mounts, Job};
use crate::state::{StateDir, Status};

/// Init's stdio as CRIU will see it, for restore to reconnect inherited pipes.
pub const DESCRIPTORS_FILE: &str = "descriptors.json";
const DUMP_LOG: &str = "dump.log";
/// CRIU's configuration file for runtimes, unless the org.criu.config annotation names one.
const CRIU_CONFIG: &str = "/etc/criu/runc.conf";

pub fn checkpoint(g: &Globals, a: &CheckpointArgs) -> Result<()> {
    let sd = StateDir::open(&g.root, &a.id)?;
    let c = sd.load()?;
    let status = c.status();
    if matches!(status, Status::Created | Status::Stopped | Status::Creating) {
        bail!(
            "container cannot be checkpointed in {} state",
            status.as_str()
        );
    }
    let spec = sd.load_config()?;
    let (images, parent) = prepare_image_paths(&a.criu, a.parent_path.as_deref())?;
    let version = criu::version()?;
    criu::check_version(version, criu::MIN_VERSION)?;
    let mut opts = base_opts(&a.criu, &c.annotations)?;
    let image_dir = open_dir(&images)?;
    opts.images_dir_fd = image_dir.as_raw_fd();
    opts.log_file = DUMP_LOG.to_string();
    opts.root = Some(c.rootfs.to_string_lossy().into_owned());
    opts.pid = Some(c.pid);
    opts.leave_running = a.leave_running;
    opts.tcp_skip_in_flight = a.tcp_skip_in_flight;
    opts.link_remap = a.link_remap;
    let (work_dir, log_dir) = work_dir(&a.criu, &images)?;
    opts.work_dir_fd = work_dir.as_ref().map(|f| f.as_raw_fd());
    opts.external = external_namespaces(&spec)?;
    let cg = Cgroup::open(Path::new(&c.cgroup_path))?;
    // On pure v2 CRIU (3.14 or later) freezes through cgroup.freeze.
    let freezer = match cg.v1_dir("freezer") {
        Some(d) => Some(d),
        None if version >= 31400 => cg.v2_dir(),
        None => None,
    };
    opts.freeze_cgroup = freezer.map(|d| d.to_string_lossy().into_owned());
    if let Some(ps) = &a.page_server {
        opts.page_server = Some(parse_page_server(ps)?);
    }
    if let Some(p) = &parent {
        opts.parent_img = Some(p.to_string_lossy().into_owned());
        opts.track_mem = true;
    }
    let kind = if a.pre_dump {
        criu::check_features(Features {
            mem_track: true,
            lazy_pages: false,
        })?;
        ReqType::PreDump
    } else {
        ReqType::Dump
    };
    if a.criu.lazy_pages {
        criu::check_features(Features {
            mem_track: false,
            lazy_pages: true,
        })?;
        if a.status_fd != -1 {
            check_status_fd(a.status_fd)?;
            opts.status_fd = Some(a.status_fd);
        }
    }
    if !a.pre_dump {
        let live_root = PathBuf::from(format!("/proc/{}/root", c.pid));
        opts.ext_mnt = mounts::for_dump(&spec, &c.bundle, &live_root);
        write_descriptors(&images, c.pid)?;
    }
    let job = Job {
        kind,
        opts,
        stdio: CriuStdio::Quiet,
        extra_fds: Vec::new(),
        log: &log_dir.join(DUMP_LOG),
    };
    job.run(&mut |_, _| Ok(()), &mut |script, _, _| {
        on_dump_notify(script, a.status_fd)
    })?;
    drop(image_dir);
    if !a.leave_running && !a.pre_dump {
        // As runc: the checkpoint stands; a failure to clean up is only a warning.
        if let Err(e) = super::delete::destroy(sd, &c) {
            crate::logger::warn(&format!("{e:#}"));
        }
    }
    Ok(())
}

/// The options dump and restore share, from the common flags.
pub fn base_opts(
    a: &CriuArgs,
    annotations: &std::collections::HashMap<String, String>,
) -> Result<Opts> {
    let mode = CgMode::parse(&a.manage_cgroups_mode)?;
    let mut empty_ns = libc::CLONE_NEWNET as u32; // as runc: it does not manage network devices
    for ns in &a.empty_ns {
        match ns.as_str() {
            "network" => empty_ns |= libc::CLONE_NEWNET as u32,
            _ => bail!("namespace {ns:?} is not supported"),
        }
    }
    let config_file = match annotations.get("org.criu.config") {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some(CRIU_CONFIG.to_string()),
    };
    Ok(Opts {
        log_level: 4,
        manage_cgroups_mode: Some(mode),
        shell_job: a.shell_job,
        ext_unix_sk: a.ext_unix_sk,
        tcp_established: a.tcp_established,
        file_locks: a.file_locks,
        empty_ns,
        orphan_pts_master: true,
        auto_dedup: a.auto_dedup,
        lazy_pages: a.lazy_pages,
        config_file,
        ..Opts::default()
    })
}

/// The image directory (made if missing, as runc) and the parent path, which
/// must be relative to it and name a directory.
fn prepare_image_paths(a: &CriuArgs, parent: Option<&Path>) -> Result<(PathBuf, Option<PathBuf>)> {
    let images = image_path(a)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&images)
        .with_context(|| format!("--image-path: create {}", images.display()))?;
    let Some(parent) = parent.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok((images, None));
    };
    if parent.is_absolute() {
        bail!("--parent-path must be relative");
    }
    let real = images.join(parent);
    match fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok((images, Some(parent.to_path_buf()))),
        Ok(_) => bail!("invalid --parent-path: {}: not a directory", real.display()),
        Err(e) => bail!("invalid --parent-path: {}: {e}", real.display()),
    }
}

/// --image-path, or ./checkpoint as runc defaults.
pub fn image_path(a: &CriuArgs) -> Result<PathBuf> {
    match &a.image_path {
        Some(p) if !p.as_os_str().is_empty() => Ok(p.clone()),
        _ => Ok(std::env::current_dir()
            .context("current directory")?
            .join("checkpoint")),
    }
}

/// --work-path (made if missing) and the directory CRIU's log lands in.
pub fn work_dir(a: &CriuArgs, images: &Path) -> Result<(Option<File>, PathBuf)> {
    let Some(w) = a.work_path.as_ref().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok((None, images.to_path_buf()));
    };
    match fs::DirBuilder::new().mode(0o700).create(w) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("--work-path: create {}", w.display())),
    }
    Ok((Some(open_dir(w)?), w.clone()))
}

/// A directory CRIU reaches through our fd (it opens /proc/<our pid>/fd/N).
pub fn open_dir(p: &Path) -> Result<File> {
    File::open(p).with_context(|| format!("open {}", p.display()))
}

/// Namespaces the container joined rather than made are external to CRIU: it
/// records them by inode and a key under which restore passes them back.
fn external_namespaces(spec: &oci_spec::runtime::Spec) -> Result<Vec<String>> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in namespaces {
        let (name, key) = match ns.typ() {
            T::Network => ("net", "extRootNetNS"),
            T::Pid => ("pid", "extRootPidNS"),
            _ => continue,
        };
        let Some(path) = ns.path() else { continue };
        let ino = fs::metadata(path)
            .with_context(|| format!("stat {}", path.display()))?
            .ino();
        out.push(format!("{name}[{ino}]:{key}"));
    }
    Ok(out)
}

/// `--page-server ADDRESS:PORT`, with runc's errors.
fn parse_page_server(s: &str) -> Result<(String, i32)> {
    let Some((addr, port)) = s.rsplit_once(':') else {
        bail!("Use --page-server ADDRESS:PORT to specify page server");
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr.is_empty() || port.is_empty() {
        bail!("Use --page-server ADDRESS:PORT to specify page server");
    }
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("Invalid port number"))?;
    Ok((addr.to_string(), port))
}

fn check_status_fd(fd: i32) -> Result<()> {
    // SAFETY: F_GETFL only queries.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        bail!(
            "invalid --status-fd argument {fd}: {}",
            std::io::Error::last_os_error()
        );
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        bail!("invalid --status-fd argument {fd}: not writable");
    }
    Ok(())
}

/// Where init's fds 0, 1 and 2 point (e.g. "/dev/null", "pipe:[123]"), saved with
/// the images so that restore can hand the pipes back.
fn write_descriptors(images: &Path, pid: i32) -> Result<()> {
    let links: Vec<String> = (0..3)
        .map(|fd| {
            fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let data = serde_json::to_vec(&links).context("encode descriptors")?;
    let path = images.join(DESCRIPTORS_FILE);
    fs::write(&path, data).with_context(|| format!("write {}", path.display()))
}

fn on_dump_notify(script: &str, status_fd: i32) -> Result<()> {
    if script == "status-ready" && status_fd >= 0 {
        // SAFETY: writing one byte to the caller's fd, then closing it, as runc.
        unsafe {
            if libc::write(status_fd, [0u8].as_ptr().cast(), 1) != 1 {
                crate::logger::warn("can't write \\0 to status fd");
            }
            libc::close(status_fd);
        }
    }
    Ok(())
}
