//! Loads and validates a bundle's config.json. Every error names the field, and
//! all of it runs before any kernel object or file exists.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use crate::linux::{caps, devices, hooks, lsm, mounts, namespaces, rlimits, seccomp, sysctl};

pub mod attrs;
pub mod unsupported;

/// A validated config with the absolute paths derived from it.
pub struct Bundle {
    pub spec: Spec,
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub ns: namespaces::Plan,
    /// The fields read apart from the typed parse (see spec/attrs.rs).
    pub attrs: attrs::Attrs,
    /// The id-mapping of each mount (idmap.rs), None where it has none.
    pub mount_idmaps: Vec<Option<crate::linux::idmap::MountIdmap>>,
}

impl Bundle {
    /// Whether the process wants a terminal (process.terminal).
    pub fn terminal(&self) -> bool {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false)
    }
}

pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir =
        fs::canonicalize(bundle).with_context(|| format!("--bundle: {}", bundle.display()))?;
    let config = dir.join("config.json");
    let data = fs::read(&config).with_context(|| format!("read {}", config.display()))?;
    // Read once as JSON for what the typed parse does not see. Before the typed parse:
    // a refused field is named whatever its value.
    let mut raw: serde_json::Value = serde_json::from_slice(&data).context("config.json")?;
    unsupported::check(&raw)?;
    crate::linux::intel_rdt::check(&raw)?;
    let (attrs, taken) = attrs::take(&mut raw)?;
    let rest = if taken {
        Some(serde_json::to_vec(&raw).context("config.json")?)
    } else {
        None
    };
    let (spec, ignored_caps) = parse_lenient(rest.as_deref().unwrap_or(&data))?;
    caps::warn_ignored(&ignored_caps);
    let ns = validate(&spec)?;
    attrs.process.validate("")?;
    attrs.linux.validate(ns.has(libc::CLONE_NEWNET))?;
    if !crate::linux::rootless::euid_is_root() && !ns.has(libc::CLONE_NEWUSER) {
        // As runc: without privileges only a user namespace gives init the rights it needs.
        bail!("linux.namespaces: rootless container requires user namespaces (paddock spec --rootless makes such a config)");
    }
    if !crate::linux::rootless::euid_is_root() {
        crate::linux::rootless::check_mount_ids(&spec)?;
    }
    if let (Some(j), Some(linux)) = (ns.join_of(libc::CLONE_NEWUSER), spec.linux()) {
        crate::linux::userns::check_joined_maps(linux, j)?;
    }
    let mount_idmaps = crate::linux::idmap::parse(&raw, &spec, &ns)?;
    let rootfs = rootfs_path(&spec, &dir)?;
    check_executable(&spec, &rootfs)?;
    crate::logger::debug(&format!(
        "loaded {} (rootfs {}, clone flags {:#x}, {} namespaces joined)",
        config.display(),
        rootfs.display(),
        ns.clone_flags,
        ns.joins.len()
    ));
    Ok(Bundle {
        spec,
        dir,
        rootfs,
        ns,
        attrs,
        mount_idmaps,
    })
}

/// Parses config.json without the capability names runc ignores (unknown, misspelled or
/// too new for this kernel), which it returns for the caller to warn about.
/// A `linux.resources.pids` without `limit` is dropped: runc leaves pids.max alone then,
/// while oci-spec would read a missing limit as 0 (which runc writes as 1).
pub fn parse_lenient(data: &[u8]) -> Result<(Spec, Vec<String>)> {
    let ignored = caps::unavailable_names(data);
    let pids_without_limit = pids_without_limit(data);
    if ignored.is_empty() && !pids_without_limit {
        return Ok((parse(data)?, ignored));
    }
    let mut value: serde_json::Value = serde_json::from_slice(data).context("config.json")?;
    caps::remove_names(&mut value["process"]["capabilities"], &ignored);
    if pids_without_limit {
        if let Some(r) = value["linux"]["resources"].as_object_mut() {
            r.remove("pids");
        }
    }
    let cleaned = serde_json::to_vec(&value).context("config.json")?;
    Ok((parse(&cleaned)?, ignored))
}

fn pids_without_limit(data: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Config {
        linux: Option<Linux>,
    }
    #[derive(serde::Deserialize)]
    struct Linux {
        resources: Option<Resources>,
    }
    #[derive(serde::Deserialize)]
    struct Resources {
        pids: Option<serde_json::Map<String, serde_json::Value>>,
    }
    serde_json::from_slice::<Config>(data).is_ok_and(|c| {
        c.linux
            .and_then(|l| l.resources)
            .and_then(|r| r.pids)
            .is_some_and(|p| !p.contains_key("limit"))
    })
}

/// Parses config.json; a type error names the JSON path of the bad value.
pub fn parse(data: &[u8]) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    let parsed = serde_path_to_error::deserialize(de);
    if let Err(e) = &parsed {
        if e.path().to_string().starts_with("linux.seccomp") {
            // runc's reading: its words for a name it refuses, or no seccomp at all.
            match seccomp::names::runc_reading(data) {
                Some(Ok(without)) => return parse(&without),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
    }
    let spec: Spec = parsed.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            anyhow::anyhow!("config.json: {inner}")
        } else {
            anyhow::anyhow!("config.json: {path}: {inner}")
        }
    })?;
    Ok(spec)
}

fn validate(spec: &Spec) -> Result<namespaces::Plan> {
    check_version(spec.version())?;
    let process = spec
        .process()
        .as_ref()
        .context("process: missing (required to create a container)")?;
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        bail!("process.args: must name the program to run");
    }
    if !process.cwd().is_absolute() {
        bail!(
            "process.cwd: must be an absolute path, got {}",
            process.cwd().display()
        );
    }
    if let Some(r) = process.rlimits() {
        rlimits::validate(r)?;
    }
    if let Some(c) = process.capabilities() {
        caps::validate(c)?;
    }
    if process.terminal().unwrap_or(false)
        && process
            .console_size()
            .is_some_and(|s| s.width() == 0 && s.height() == 0)
    {
        bail!("process.consoleSize: width and height must not both be 0");
    }
    if let Some(m) = spec.mounts() {
        mounts::validate(m)?;
    }
    rootfs_propagation(spec)?;
    if let Some(h) = spec.hooks() {
        hooks::validate(h)?;
    }
    let linux = spec.linux().as_ref().context("linux: missing")?;
    let ns = namespaces::plan(linux.namespaces().as_deref().unwrap_or_default())?;
    // Without a mount namespace the container's mounts are made in the host's
    // (inside its rootfs only; delete removes them). Masks over host paths: no.
    let restricts = |p: &Option<Vec<String>>| p.as_ref().is_some_and(|p| !p.is_empty());
    if !ns.has(libc::CLONE_NEWNS)
        && (restricts(linux.masked_paths()) || restricts(linux.readonly_paths()))
    {
        bail!("linux.maskedPaths: unable to restrict sys entries without a private MNT namespace");
    }
    let user_ns = ns.has(libc::CLONE_NEWUSER);
    let uid_maps = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid_maps = linux.gid_mappings().as_deref().unwrap_or_default();
    namespaces::validate_mappings("linux.uidMappings", uid_maps)?;
    namespaces::validate_mappings("linux.gidMappings", gid_maps)?;
    if ns.new_user() && (uid_maps.is_empty() || gid_maps.is_empty()) {
        bail!("linux.uidMappings: a new user namespace needs uidMappings and gidMappings");
    }
    if !user_ns && (!uid_maps.is_empty() || !gid_maps.is_empty()) {
        bail!("linux.uidMappings: mappings given without a user namespace");
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !ns.has(libc::CLONE_NEWUTS) {
        bail!("hostname: setting a hostname needs a private UTS namespace");
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !ns.has(libc::CLONE_NEWUTS) {
        bail!("domainname: setting a domainname needs a private UTS namespace");
    }
    if linux.time_offsets().is_some() && !ns.new_time {
        bail!("linux.timeOffsets: offsets need a new time namespace");
    }
    if let Some(r) = linux.resources() {
        crate::linux::cgroups::resources::validate(r)?;
        // The rules as v2's program reduces them, on v1 too: runc refuses a rule that
        // takes access out of an earlier wildcard on both, before anything exists.
        if let Some(rules) = r.devices().as_deref() {
            let created = linux.devices().as_deref().unwrap_or_default();
            let effective = crate::linux::cgroups::devices::effective(rules, created);
            crate::linux::cgroups::devices_bpf::reduce(&effective)?;
        }
    }
    if let Some(s) = linux.sysctl() {
        let flags = sysctl::NamespaceFlags {
            net: ns.has(libc::CLONE_NEWNET),
            ipc: ns.has(libc::CLONE_NEWIPC),
            uts: ns.has(libc::CLONE_NEWUTS),
        };
        sysctl::validate(
            s,
            &flags,
            spec.hostname().as_deref().is_some_and(|h| !h.is_empty()),
        )?;
    }
    if let Some(d) = linux.devices() {
        devices::validate(d)?;
    }
    if let Some(s) = linux.seccomp() {
        seccomp::validate(s)?;
    }
    lsm::validate(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
        linux.mount_label().as_deref(),
    )?;
    if ns.join_of(libc::CLONE_NEWTIME).is_some() && linux.time_offsets().is_some() {
        bail!("linux.timeOffsets: offsets cannot be set when joining a time namespace");
    }
    Ok(ns)
}

/// linux.rootfsPropagation as mount flags; runc refuses a name it does not know
/// before anything exists.
fn rootfs_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    let Some(name) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    match mounts::propagation_flags(name) {
        Some(flags) => Ok(Some(flags)),
        None => bail!("linux.rootfsPropagation: rootfsPropagation={name} is not supported"),
    }
}

/// As runc, which calls a private root propagation not safe without pivot_root.
pub fn check_no_pivot(spec: &Spec, no_pivot: bool) -> Result<()> {
    if no_pivot && rootfs_propagation(spec)?.is_some_and(|f| f.contains(MsFlags::MS_PRIVATE)) {
        bail!("linux.rootfsPropagation: rootfsPropagation of [r]private is not safe without pivot_root");
    }
    Ok(())
}

fn check_version(v: &str) -> Result<()> {
    let major = v.split('.').next().unwrap_or("");
    if major != "1" {
        bail!("ociVersion: unsupported version {v:?} (paddock supports 1.x)");
    }
    Ok(())
}

fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec.root().as_ref().context("root: missing")?;
    let given = root.path();
    let joined = if given.is_absolute() {
        given.clone()
    } else {
        bundle.join(given)
    };
    let meta = fs::symlink_metadata(&joined)
        .with_context(|| format!("root.path: {} does not exist", joined.display()))?;
    if meta.file_type().is_symlink() {
        bail!("root.path: {} is a symlink", joined.display());
    }
    if !meta.is_dir() {
        bail!("root.path: {} is not a directory", joined.display());
    }
    fs::canonicalize(&joined).with_context(|| format!("root.path: {}", joined.display()))
}

/// Fails early when the program is plainly missing from the rootfs. Only checked
/// when no mount could supply it; init checks again after the mounts are done.
fn check_executable(spec: &Spec, rootfs: &Path) -> Result<()> {
    let Some(process) = spec.process() else {
        return Ok(());
    };
    let Some(prog) = process.args().as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    if prog.contains('/') && !prog.starts_with('/') {
        return Ok(());
    }
    let mount_dests: Vec<&Path> = spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| m.destination().as_path())
        .collect();
    let env = process.env().as_deref().unwrap_or_default();
    let candidates = program_candidates(prog, process.cwd(), env);
    if candidates
        .iter()
        .any(|c| mount_dests.iter().any(|d| c.starts_with(d)))
    {
        return Ok(());
    }
    // Symlinks in the image are resolved by init later, inside the container.
    find_program(prog, process.cwd(), env, |c| {
        let host = rootfs.join(c.strip_prefix("/").unwrap_or(c));
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => Probe::Executable,
            Ok(m) => Probe::of(&m),
            Err(_) => Probe::Missing,
        }
    })
    .map(|_| ())
}

/// What a path is, as far as running it goes.
pub enum Probe {
    Missing,
    Directory,
    NotExecutable,
    Executable,
}

impl Probe {
    pub fn of(m: &fs::Metadata) -> Probe {
        if m.is_dir() {
            Probe::Directory
        } else if m.is_file() && m.permissions().mode() & 0o111 != 0 {
            Probe::Executable
        } else {
            Probe::NotExecutable
        }
    }
}

fn program_candidates(prog: &str, cwd: &Path, env: &[String]) -> Vec<PathBuf> {
    if prog.contains('/') {
        vec![cwd.join(prog)]
    } else {
        search_path(env).into_iter().map(|d| d.join(prog)).collect()
    }
}

/// Where execve will find `prog`. Failures use runc's wording, which callers map
/// to exit codes: "executable file not found in $PATH" and "no such file or
/// directory" to 127, "permission denied" to 126.
pub fn find_program(
    prog: &str,
    cwd: &Path,
    env: &[String],
    probe: impl Fn(&Path) -> Probe,
) -> Result<PathBuf> {
    let candidates = program_candidates(prog, cwd, env);
    if !prog.contains('/') {
        return candidates
            .into_iter()
            .find(|c| matches!(probe(c), Probe::Executable))
            .with_context(|| {
                format!("process.args[0]: exec: {prog:?}: executable file not found in $PATH")
            });
    }
    let path = candidates
        .into_iter()
        .next()
        .unwrap_or_else(|| PathBuf::from(prog));
    match probe(&path) {
        Probe::Executable => Ok(path),
        Probe::Missing => {
            bail!("process.args[0]: exec: {prog:?}: stat {prog}: no such file or directory")
        }
        Probe::Directory => bail!("process.args[0]: exec: {prog:?}: is a directory"),
        Probe::NotExecutable => bail!("process.args[0]: exec: {prog:?}: permission denied"),
    }
}

/// Directories of PATH from the process environment (or the usual default).
/// The directories of the process's PATH; none without one, as in runc 1.5.
pub fn search_path(env: &[String]) -> Vec<PathBuf> {
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    path.split(':')
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<namespaces::Plan> {
        validate(&parse(v.to_string().as_bytes())?)
    }

    #[test]
    fn pids_without_a_limit_is_no_pids_setting() {
        let mut v = minimal();
        v["linux"]["resources"] = serde_json::json!({"pids": {}});
        let (spec, _) = parse_lenient(&serde_json::to_vec(&v).unwrap()).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert!(r.pids().is_none());
        v["linux"]["resources"] = serde_json::json!({"pids": {"limit": 0}});
        let (spec, _) = parse_lenient(&serde_json::to_vec(&v).unwrap()).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert_eq!(r.pids().as_ref().unwrap().limit(), 0);
    }

    #[test]
    fn minimal_config_is_valid() {
        assert!(check(minimal()).is_ok());
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut v = minimal();
        v["process"]["user"]["uid"] = "zero".into();
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("process.user.uid"), "{e}");
        let e = parse(b"{\"ociVersion\": ").unwrap_err().to_string();
        assert!(e.starts_with("config.json:"), "{e}");
    }

    #[test]
    fn unknown_major_version_is_rejected() {
        let mut v = minimal();
        v["ociVersion"] = "9.9".into();
        assert!(check(v).unwrap_err().to_string().starts_with("ociVersion:"));
    }

    #[test]
    fn relative_cwd_and_missing_args_are_rejected() {
        let mut v = minimal();
        v["process"]["cwd"] = "tmp".into();
        assert!(check(v).unwrap_err().to_string().starts_with("process.cwd"));
        let mut v = minimal();
        v["process"]["args"] = serde_json::json!([]);
        assert!(check(v)
            .unwrap_err()
            .to_string()
            .starts_with("process.args"));
    }

    #[test]
    fn hostname_needs_uts_and_maps_need_userns() {
        let mut v = minimal();
        v["hostname"] = "h".into();
        assert!(check(v).unwrap_err().to_string().starts_with("hostname"));
        let mut v = minimal();
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        assert!(check(v)
            .unwrap_err()
            .to_string()
            .starts_with("linux.uidMappings"));
    }

    #[test]
    fn program_lookup_uses_the_wording_callers_map_to_exit_codes() {
        let env = ["PATH=/bin".to_string()];
        let probe = |p: &Path| match p.to_str() {
            Some("/bin/sh") => Probe::Executable,
            Some("/etc/passwd") => Probe::NotExecutable,
            _ => Probe::Missing,
        };
        let cwd = Path::new("/");
        assert_eq!(
            find_program("sh", cwd, &env, probe).unwrap(),
            Path::new("/bin/sh")
        );
        let e = |prog: &str| {
            find_program(prog, cwd, &env, probe)
                .unwrap_err()
                .to_string()
        };
        assert!(e("nope").ends_with("executable file not found in $PATH"));
        assert!(e("/nope").ends_with("no such file or directory"));
        assert!(e("/etc/passwd").ends_with("permission denied"));
        assert!(e("nope").starts_with("process.args[0]"));
    }

    #[test]
    fn no_mount_namespace_refuses_only_masks() {
        let mut v = minimal();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        check(v.clone()).unwrap();
        v["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore"]);
        assert_eq!(
            check(v).unwrap_err().to_string(),
            "linux.maskedPaths: unable to restrict sys entries without a private MNT namespace"
        );
    }
}
