use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::{create::write_pid_file, Globals};
use crate::cli::ExecArgs;
use crate::error::RuntimeError;
use crate::linux::caps as linux_caps;
use crate::linux::cgroups::Cgroup;
use crate::linux::pidfd::{Kind, PidfdSocket};
use crate::process::{self, ExecLaunch};
use crate::spec::attrs::ProcessAttrs;
use crate::state::{StateDir, Status};

/// Exit code of `exec` when paddock itself fails (runc's: bad input, a missing
/// program, a failed execve), so callers can tell it from the program's own codes.
const EXEC_FAILED: i32 = 255;

/// Runs a process in a running container; in the foreground returns its exit
/// code (128+signal when killed), with --detach returns once it has exec'd.
/// Every failure of paddock's own is reported as runc does: "exec failed: ...",
/// exit code 255 (Podman maps 126/127 from the wording, which is kept).
pub fn exec(g: &Globals, args: &ExecArgs) -> Result<i32> {
    match exec_process(g, args) {
        Ok(code) => Ok(code),
        Err(e) => {
            crate::logger::release_warnings();
            crate::logger::error(&format!("exec failed: {e:#}"));
            Ok(EXEC_FAILED)
        }
    }
}

fn exec_process(g: &Globals, args: &ExecArgs) -> Result<i32> {
    // First, before we open anything that could take the place of a missing one.
    super::create::check_preserved_fds(args.preserve_fds)?;
    let (c, spec) = {
        // Held only while reading: a long-running exec must not block other commands.
        let sd = StateDir::open(&g.root, &args.id)?;
        (sd.load()?, sd.load_config()?)
    };
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => bail!("cannot exec in a paused container (use --ignore-paused)"),
        Status::Stopped | Status::Creating => return Err(RuntimeError::NotRunning.into()),
    }
    let (process, own_attrs) = match &args.process {
        Some(path) => {
            let (mut p, attrs) = read_process_file(path)?;
            // As runc, whose exec takes the umask from config.json; paddock lets a
            // process.json's own umask win (runc ignores it without a word).
            if p.user().umask().is_none() {
                let umask = spec.process().as_ref().and_then(|c| c.user().umask());
                p.user_mut().set_umask(umask);
            }
            (p, attrs)
        }
        None => (
            process_from_flags(spec.process().as_ref(), args)?,
            Default::default(),
        ),
    };
    // As runc: each attribute the process does not set comes from config.json.
    let attrs = own_attrs.or(&c.attrs.process);
    crate::linux::lsm::validate(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
        None,
    )?;
    let tail = crate::linux::exeseal::for_container(process::tail::needs_paddock(
        Some(&process),
        spec.linux().as_ref(),
        None,
    ))?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && args.console_socket.is_none() && args.detach {
        bail!("--console-socket: required with --tty and --detach");
    }
    let mut proxy_end = None;
    let console = match (&args.console_socket, terminal) {
        // As runc: a console socket is for a caller that detaches.
        (Some(_), true) if !args.detach => {
            bail!("--console-socket: cannot be used without --detach (paddock proxies the terminal itself)")
        }
        (Some(p), true) => Some(
            UnixStream::connect(p)
                .with_context(|| format!("--console-socket: connect {}", p.display()))?
                .into(),
        ),
        (None, true) => {
            let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
            proxy_end = Some(ours);
            Some(theirs.into())
        }
        (Some(_), false) => bail!("--console-socket: given without --tty"),
        (None, false) => None,
    };
    let pidfd_socket = args
        .pidfd_socket
        .as_deref()
        .map(PidfdSocket::connect)
        .transpose()?;
    let cgroup = Cgroup::open(Path::new(&c.cgroup_path))?.with_subs(&args.cgroup)?;
    let pid = process::spawn_exec(
        ExecLaunch {
            process: &process,
            attrs: &attrs,
            linux_attrs: &c.attrs.linux,
            linux: spec.linux().as_ref(),
            state: c.hook_state(Status::Running),
            init_pid: c.pid,
            init_start_time: c.start_time,
            console,
            proxied_console: proxy_end.is_some(),
            preserve_fds: args.preserve_fds,
            tail,
        },
        &cgroup,
    )?;
    if let Some(s) = &pidfd_socket {
        if let Err(e) = s.send(pid, Kind::Exec) {
            process::kill_and_reap(pid);
            return Err(e);
        }
    }
    if let Some(p) = &args.pid_file {
        write_pid_file(p, pid)?;
    }
    if args.detach {
        return Ok(0);
    }
    match proxy_end {
        Some(sock) => {
            let master = super::console_proxy::receive_master(&sock)?;
            super::console_proxy::proxy(master, pid)
        }
        None => {
            super::run::forward_signals_to(pid);
            process::wait_exit_code(pid)
        }
    }
}

/// A process.json as runc reads it: `user` may be left out (uid and gid 0), `cwd`
/// must be a non-empty absolute path and `args` must name a program.
fn read_process_file(path: &Path) -> Result<(Process, ProcessAttrs)> {
    let data =
        std::fs::read(path).with_context(|| format!("--process: read {}", path.display()))?;
    let mut value: serde_json::Value = serde_json::from_slice(&data)
        .with_context(|| format!("--process: parse {}", path.display()))?;
    let attrs = crate::spec::attrs::take_process(&mut value)?;
    let obj = value
        .as_object_mut()
        .context("--process: process property must not be empty")?;
    if obj.get("user").is_none_or(|u| u.is_null()) {
        obj.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
    }
    match obj.get("cwd").and_then(|c| c.as_str()) {
        None | Some("") => bail!("--process: cwd: Cwd property must not be empty"),
        Some(c) if !c.starts_with('/') => bail!("--process: cwd: Cwd must be an absolute path"),
        Some(_) => {}
    }
    if let Some(caps) = obj.get_mut("capabilities") {
        let ignored = linux_caps::unavailable_in(caps);
        linux_caps::remove_names(caps, &ignored);
        linux_caps::warn_ignored(&ignored);
    }
    let p: Process = serde_path_to_error::deserialize(value)
        .map_err(|e| anyhow::anyhow!("--process: {}: {}", e.path(), e.inner()))?;
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("--process: args: args must not be empty");
    }
    Ok((p, attrs))
}

/// The container's own process config with the command and the flags applied.
fn process_from_flags(base: Option<&Process>, args: &ExecArgs) -> Result<Process> {
    let mut p = base.cloned().context("saved config has no process")?;
    if args.command.is_empty() {
        bail!("exec args cannot be empty");
    }
    p.set_args(Some(args.command.clone()));
    // The config's consoleSize stays, as in runc; it applies only with --tty.
    p.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        if !cwd.is_absolute() {
            bail!("--cwd: must be an absolute path");
        }
        p.set_cwd(cwd.clone());
    }
    if !args.env.is_empty() {
        p.set_env(Some(merge_env(
            p.env().as_deref().unwrap_or_default(),
            &args.env,
        )?));
    }
    if let Some(u) = &args.user {
        let (uid, gid) = parse_user(u)?;
        p.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            p.user_mut().set_gid(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &args.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &args.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if !args.cap.is_empty() {
        let mut caps: LinuxCapabilities = p.capabilities().clone().unwrap_or_default();
        // As runc: only exact CAP_ names the kernel has; others are ignored with a warning.
        let ignored = linux_caps::unavailable(args.cap.iter().cloned());
        for name in args.cap.iter().filter(|n| !ignored.contains(n)) {
            let cap: Capability = serde_json::from_value(name.as_str().into())
                .with_context(|| format!("--cap: {name}"))?;
            // Never inheritable (CVE-2022-29162).
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // As runc 1.5: ambient too when the config has an inheritable set; the
            // kernel raises it only if the config made the cap inheritable.
            if caps.inheritable().is_some() {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
        linux_caps::warn_ignored(&ignored);
    }
    Ok(p)
}

/// The container's environment with KEY=VALUE overrides applied.
fn merge_env(base: &[String], extra: &[String]) -> Result<Vec<String>> {
    let mut env: Vec<String> = base.to_vec();
    for e in extra {
        let Some((key, _)) = e.split_once('=') else {
            bail!("--env: {e:?} is not KEY=VALUE");
        };
        env.retain(|x| x.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(e.clone());
    }
    Ok(env)
}

/// "uid" or "uid:gid", numeric as in runc.
fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u
        .parse()
        .with_context(|| format!("--user: {s:?} is not uid[:gid]"))?;
    let gid = g
        .map(|g| {
            g.parse()
                .with_context(|| format!("--user: {s:?} is not uid[:gid]"))
        })
        .transpose()?;
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_env_flags() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:2000").unwrap(), (1000, Some(2000)));
        assert!(parse_user("bob").is_err());
        let env = merge_env(&["A=1".into(), "B=2".into()], &["A=3".into()]).unwrap();
        assert_eq!(env, ["B=2", "A=3"]);
        assert!(merge_env(&[], &["NOEQ".into()]).is_err());
    }
}
