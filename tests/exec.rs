//! exec: a new process inside a running container, with every flag, exit codes,
//! stdio, tty, namespaces, cgroups, hygiene after many execs, and a race watcher.
mod common;

use std::fs;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{code_of, inside, recv_one_fd, Bundle, Env, Out};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;

/// runc's contract for exec's own failures (bad input, missing program, failed
/// execve): "exec failed: ..." on one stderr line, exit code 255.
trait ExecFails {
    fn exec_fails(self) -> Out;
}

impl ExecFails for Out {
    #[track_caller]
    fn exec_fails(self) -> Out {
        assert_eq!(self.code, 255, "expected exit 255: {self:?}");
        assert_eq!(
            self.stderr.trim_end_matches('\n').lines().count(),
            1,
            "expected one stderr line: {self:?}"
        );
        assert!(self.stderr.starts_with("exec failed: "), "{self:?}");
        self
    }
}

/// The container's init in every test (exec'd sleeps use another number).
const INIT: [&str; 2] = ["sleep", "100000"];

/// Creates and starts a container from `b`; returns its ID and host pid.
fn up(env: &Env, b: &Bundle) -> (String, i32) {
    let id = env.id("ex");
    env.create(b, &id).success();
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "running"));
    let pid = env.state(&id)["pid"].as_i64().unwrap() as i32;
    (id, pid)
}

/// A running `sleep` container with the default config.
fn running(env: &Env) -> (String, i32) {
    up(env, &env.bundle(&INIT))
}

fn down(env: &Env, id: &str) {
    env.paddock(&["delete", "--force", id]).success();
}

/// `paddock exec [flags..] ID cmd..`: `pre` goes before the ID.
fn exec(env: &Env, pre: &[&str], id: &str, cmd: &[&str]) -> Out {
    env.paddock(&exec_args(pre, id, cmd))
}

fn exec_args<'a>(pre: &[&'a str], id: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["exec"];
    a.extend_from_slice(pre);
    a.push(id);
    a.extend_from_slice(cmd);
    a
}

/// A field of /proc/PID/status text.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
}

fn hex(status: &str, key: &str) -> u64 {
    u64::from_str_radix(field(status, key), 16).unwrap()
}

/// Host pids (with their state letter) in the same pid namespace as `init`.
fn ns_members(init: i32) -> Vec<(i32, char)> {
    let ns = fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        v.push((pid, state.chars().next().unwrap_or('?')));
    }
    v.sort();
    v
}

fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn fd_list(out: &str) -> Vec<u32> {
    let mut v: Vec<u32> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    v.sort();
    v
}

/// Makes the spawned command see `files` as fds 3, 4, ... (without CLOEXEC).
fn give_fds(cmd: &mut Command, files: &[&fs::File]) {
    // Duplicate above the target range first so dup2 never clobbers a source.
    let raws: Vec<RawFd> = files
        .iter()
        .map(|f| {
            // SAFETY: F_DUPFD_CLOEXEC of a live fd; the copy lives as long as this test.
            unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) }
        })
        .collect();
    assert!(raws.iter().all(|&r| r >= 100));
    // SAFETY: dup2 is async-signal-safe; the targets end up without CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            for (i, &r) in raws.iter().enumerate() {
                if libc::dup2(r, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Waits (bounded) for a spawned child; kills it and panics if it does not end.
fn wait_child(child: &mut Child) -> i32 {
    let mut code = None;
    common::wait_for(|| {
        code = child.try_wait().unwrap().map(code_of);
        code.is_some()
    });
    code.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("paddock exec did not exit");
    })
}

/// Bytes and fds of the next message on the socket (0 bytes, no fds at EOF).
fn recv_rest(sock: RawFd) -> (usize, usize) {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
    let mut n = 0;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            n += v.len();
            for fd in v {
                // SAFETY: closing an fd the kernel just gave us.
                unsafe { libc::close(fd) };
            }
        }
    }
    (msg.bytes, n)
}

// ---------------------------------------------------------------- basics

#[test]
fn exec_runs_the_command_and_passes_stdout_and_stderr() {
    let env = Env::new();
    let (id, _) = running(&env);
    let out = exec(&env, &[], &id, &["sh", "-c", "echo out; echo err >&2"]).success();
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    down(&env, &id);
}

#[test]
fn exit_code_3_is_passed_through() {
    let env = Env::new();
    let (id, _) = running(&env);
    let out = exec(&env, &[], &id, &["sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "{out:?}");
    down(&env, &id);
}

#[test]
fn process_killed_by_sigkill_exits_137() {
    let env = Env::new();
    let (id, _) = running(&env);
    let out = exec(&env, &[], &id, &["sh", "-c", "kill -9 $$"]);
    assert_eq!(out.code, 137, "{out:?}");
    down(&env, &id);
}

#[test]
fn stdin_passes_through() {
    let env = Env::new();
    let (id, _) = running(&env);
    let mut child = env.spawn(&["exec", &id, "cat"], |c| {
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
    });
    child.stdin.take().unwrap().write_all(b"data\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code_of(out.status), 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "data\n");
    down(&env, &id);
}

#[test]
fn sigterm_to_paddock_is_forwarded_to_the_process() {
    let env = Env::new();
    let (id, init) = running(&env);
    let mut child = env.spawn(&["exec", &id, "sleep", "99999"], |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    let ppid = child.id();
    // Ready once the sleep runs and paddock catches SIGTERM (bit 14 of SigCgt).
    assert!(common::wait_for(|| {
        let sleeping = ns_members(init).iter().any(|(p, _)| {
            fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default() == b"sleep\x0099999\x00"
        });
        let st = fs::read_to_string(format!("/proc/{ppid}/status")).unwrap_or_default();
        sleeping && st.contains("SigCgt") && hex(&st, "SigCgt") & (1 << (libc::SIGTERM - 1)) != 0
    }));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(ppid as i32, libc::SIGTERM) };
    assert_eq!(wait_child(&mut child), 128 + libc::SIGTERM);
    down(&env, &id);
}

#[test]
fn process_file_sets_args_cwd_env_and_user() {
    let env = Env::new();
    let (id, _) = running(&env);
    let file = env.dir.join("process.json");
    let p = json!({
        "terminal": false,
        "args": ["sh", "-c", "echo $FOO; pwd; id -u; id -g"],
        "cwd": "/tmp",
        "env": ["FOO=bar", "PATH=/bin"],
        "user": {"uid": 1000, "gid": 2000}
    });
    fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = exec(&env, &["--process", file.to_str().unwrap()], &id, &[]).success();
    assert_eq!(out.stdout, "bar\n/tmp\n1000\n2000\n");
    down(&env, &id);
}

#[test]
fn bad_process_files_fail_with_one_line() {
    let env = Env::new();
    let (id, init) = running(&env);
    let missing = env.dir.join("missing.json");
    let garbage = env.dir.join("garbage.json");
    fs::write(&garbage, "not json").unwrap();
    let no_args = env.dir.join("noargs.json");
    fs::write(
        &no_args,
        r#"{"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    for f in [&missing, &garbage, &no_args] {
        exec(&env, &["--process", f.to_str().unwrap()], &id, &[]).exec_fails();
    }
    assert_eq!(ns_members(init), [(init, 'S')]);
    down(&env, &id);
}

// ---------------------------------------------------------------- errors

#[test]
fn exec_into_a_nonexistent_container_fails() {
    let env = Env::new();
    let id = env.id("nosuch");
    let out = exec(&env, &[], &id, &["true"]).exec_fails();
    assert!(out.stderr.contains("does not exist"), "{out:?}");
    env.assert_clean();
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("stopped");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "stopped"));
    exec(&env, &[], &id, &["true"]).exec_fails();
    assert_eq!(env.status(&id), "stopped");
    env.paddock(&["delete", &id]).success();
    env.assert_clean();
}

#[test]
fn missing_executable_fails_and_leaves_nothing() {
    let env = Env::new();
    let (id, init) = running(&env);
    let out = exec(&env, &[], &id, &["/no/such/program"]).exec_fails();
    assert!(out.stderr.contains("/no/such/program"), "{out:?}");
    assert_eq!(env.status(&id), "running");
    assert_eq!(ns_members(init), [(init, 'S')]);
    down(&env, &id);
    env.assert_clean();
}

#[test]
fn exec_without_a_command_fails() {
    let env = Env::new();
    let (id, _) = running(&env);
    exec(&env, &[], &id, &[]).exec_fails();
    down(&env, &id);
}

// ---------------------------------------------------------------- namespaces and cgroup

#[test]
fn exec_sees_the_container_init_as_pid_1() {
    let env = Env::new();
    let (id, _) = running(&env);
    let out = exec(&env, &[], &id, &["sh", "-c", "echo $$; ps"]).success();
    let mut lines = out.stdout.lines();
    assert_ne!(lines.next(), Some("1"), "exec must not be pid 1: {out:?}");
    let pid1 = lines
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no pid 1 in ps: {out:?}"));
    assert!(pid1.ends_with("sleep 100000"), "{out:?}");
    down(&env, &id);
}

#[test]
fn exec_shares_the_container_hostname_and_network() {
    let env = Env::new();
    let mut b = env.bundle(&INIT);
    b.config(|c| c["hostname"] = "exec-uts-host".into());
    let (id, _) = up(&env, &b);
    let out = exec(&env, &[], &id, &["hostname"]).success();
    assert_eq!(out.stdout, "exec-uts-host\n");
    // The container's fresh net namespace has only lo.
    let out = exec(&env, &[], &id, &["cat", "/proc/net/dev"]).success();
    let ifaces: Vec<&str> = out
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{out:?}");
    down(&env, &id);
}

/// `exec -d --pid-file` of a long sleep; returns its host pid.
fn detached_sleep(env: &Env, id: &str, pre: &[&str]) -> i32 {
    let pid_file = env.dir.join(format!("exec-{}.pid", pre.len()));
    let mut args = vec!["-d", "--pid-file", pid_file.to_str().unwrap()];
    args.extend_from_slice(pre);
    let mut child = env.spawn(&exec_args(&args, id, &["sleep", "99999"]), |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    assert_eq!(wait_child(&mut child), 0, "exec --detach must return");
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(
        fs::read(format!("/proc/{pid}/cmdline")).unwrap() == b"sleep\x0099999\x00",
        "pid file names the exec'd process"
    );
    pid
}

fn kill_and_wait_gone(pid: i32) {
    // SAFETY: SIGKILL to a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(common::wait_for(|| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    }));
}

#[test]
fn detach_and_pid_file_leave_the_process_running() {
    let env = Env::new();
    let (id, init) = running(&env);
    let pid = detached_sleep(&env, &id, &[]);
    assert_eq!(ns_members(init).len(), 2);
    kill_and_wait_gone(pid);
    down(&env, &id);
}

#[test]
fn exec_joins_every_namespace_and_the_root_of_the_container() {
    let env = Env::new();
    let (id, init) = running(&env);
    let pid = detached_sleep(&env, &id, &[]);
    for ns in ["ipc", "mnt", "net", "pid", "uts", "cgroup"] {
        let theirs = fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        let ours = fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(ours, theirs, "{ns} namespace");
    }
    let a = fs::metadata(format!("/proc/{init}/root/")).unwrap();
    let b = fs::metadata(format!("/proc/{pid}/root/")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "same root");
    kill_and_wait_gone(pid);
    down(&env, &id);
}

#[test]
fn exec_joins_the_container_cgroup() {
    let env = Env::new();
    let (id, init) = running(&env);
    let pid = detached_sleep(&env, &id, &[]);
    let theirs = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let ours = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(theirs.contains(&format!("/{id}")), "{theirs}");
    assert_eq!(ours, theirs);
    kill_and_wait_gone(pid);
    down(&env, &id);
}

/// Where to make a sub-cgroup for --cgroup: (host dir, flag value, which
/// /proc/PID/cgroup line it changes). v1 pids when mounted, else cgroup2.
fn sub_cgroup(init: i32) -> (PathBuf, String, usize) {
    let lines: Vec<String> = fs::read_to_string(format!("/proc/{init}/cgroup"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts: Vec<(String, String, String)> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split_whitespace();
            let fstype = post.next()?.to_string();
            let opts = post.nth(1)?.to_string();
            Some((fstype, opts, pre.split_whitespace().nth(4)?.to_string()))
        })
        .collect();
    let v1_pids = mounts
        .iter()
        .find(|(t, o, _)| t == "cgroup" && o.split(',').any(|x| x == "pids"));
    let (mnt, flag, idx) = match v1_pids {
        Some((_, _, m)) => {
            let idx = lines
                .iter()
                .position(|l| l.split(':').nth(1).unwrap().split(',').any(|c| c == "pids"))
                .unwrap();
            (m.clone(), "pids:sub".to_string(), idx)
        }
        None => {
            let (_, _, m) = mounts.iter().find(|(t, _, _)| t == "cgroup2").unwrap();
            let idx = lines.iter().position(|l| l.starts_with("0::")).unwrap();
            (m.clone(), "sub".to_string(), idx)
        }
    };
    let rel = lines[idx].splitn(3, ':').nth(2).unwrap();
    let dir = PathBuf::from(format!("{mnt}{rel}/sub"));
    (dir, flag, idx)
}

#[test]
fn cgroup_flag_puts_the_process_in_the_sub_cgroup_and_the_container_for_the_rest() {
    let env = Env::new();
    let (id, init) = running(&env);
    let (dir, flag, idx) = sub_cgroup(init);
    fs::create_dir(&dir).unwrap();
    let pid = detached_sleep(&env, &id, &["--cgroup", &flag]);
    let mut want: Vec<String> = fs::read_to_string(format!("/proc/{init}/cgroup"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    want[idx].push_str("/sub");
    let ours = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    kill_and_wait_gone(pid);
    down(&env, &id);
    assert_eq!(ours.lines().collect::<Vec<_>>(), want);
}

#[test]
fn cgroup_flag_outside_or_missing_is_refused() {
    let env = Env::new();
    let (id, init) = running(&env);
    for bad in ["../escape", "/../../x", "nosuch", "pids:nosuch"] {
        exec(&env, &["--cgroup", bad], &id, &["true"]).exec_fails();
    }
    assert_eq!(ns_members(init), [(init, 'S')]);
    down(&env, &id);
}

// ---------------------------------------------------------------- process flags

#[test]
fn cwd_flag_and_the_config_cwd() {
    let env = Env::new();
    let mut b = env.bundle(&INIT);
    b.config(|c| c["process"]["cwd"] = "/root".into());
    let (id, _) = up(&env, &b);
    assert_eq!(exec(&env, &[], &id, &["pwd"]).success().stdout, "/root\n");
    let out = exec(&env, &["--cwd", "/tmp"], &id, &["pwd"]).success();
    assert_eq!(out.stdout, "/tmp\n");
    exec(&env, &["--cwd", "tmp"], &id, &["pwd"]).exec_fails();
    exec(&env, &["--cwd", "/no/such/dir"], &id, &["pwd"]).exec_fails();
    down(&env, &id);
}

#[test]
fn cwd_through_an_inherited_host_fd_is_refused() {
    let env = Env::new();
    let (id, init) = running(&env);
    let host_dir = fs::File::open(&env.dir).unwrap();
    for pre in [
        &["--cwd", "/proc/self/fd/3"][..],
        &["--preserve-fds", "1", "--cwd", "/proc/self/fd/3"],
    ] {
        let mut cmd = env.cmd(&exec_args(pre, &id, &["pwd"]));
        give_fds(&mut cmd, &[&host_dir]);
        let out = env.output(cmd);
        assert!(!out.stdout.contains("paddock"), "host dir leaked: {out:?}");
        out.exec_fails();
    }
    assert_eq!(ns_members(init), [(init, 'S')]);
    down(&env, &id);
}

#[test]
fn env_flag_adds_and_overrides_the_container_env() {
    let env = Env::new();
    let (id, _) = running(&env);
    let mut cmd = env.cmd(&exec_args(
        &["-e", "FOO=bar", "--env", "TERM=dumb"],
        &id,
        &["env"],
    ));
    cmd.env("PADDOCK_HOST_ONLY", "1");
    let out = env.output(cmd).success();
    let vars: Vec<&str> = out.stdout.lines().collect();
    assert!(vars.contains(&"FOO=bar"), "{out:?}");
    assert_eq!(vars.iter().filter(|v| v.starts_with("TERM=")).count(), 1);
    assert!(vars.contains(&"TERM=dumb"), "{out:?}");
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{out:?}");
    assert!(!out.stdout.contains("PADDOCK_HOST_ONLY"), "{out:?}");
    exec(&env, &["-e", "NOEQUALS"], &id, &["true"]).exec_fails();
    down(&env, &id);
}

#[test]
fn user_flag_sets_uid_and_gid() {
    let env = Env::new();
    let (id, _) = running(&env);
    let st = exec(
        &env,
        &["-u", "1000:2000"],
        &id,
        &["cat", "/proc/self/status"],
    )
    .success();
    assert_eq!(field(&st.stdout, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(&st.stdout, "Gid"), "2000\t2000\t2000\t2000");
    let st = exec(
        &env,
        &["--user", "1000"],
        &id,
        &["cat", "/proc/self/status"],
    )
    .success();
    assert_eq!(field(&st.stdout, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(
        field(&st.stdout, "Gid"),
        "0\t0\t0\t0",
        "gid from the config"
    );
    exec(&env, &["-u", "bob"], &id, &["true"]).exec_fails();
    down(&env, &id);
}

#[test]
fn user_defaults_to_the_container_user() {
    let env = Env::new();
    let mut b = env.bundle(&INIT);
    b.config(|c| c["process"]["user"] = json!({"uid": 65534, "gid": 65534}));
    let (id, _) = up(&env, &b);
    let out = exec(&env, &[], &id, &["sh", "-c", "id -u; id -g"]).success();
    assert_eq!(out.stdout, "65534\n65534\n");
    down(&env, &id);
}

#[test]
fn additional_gids_flag_sets_exactly_those_groups() {
    let env = Env::new();
    let (id, _) = running(&env);
    let out = exec(
        &env,
        &["-u", "1000:1000", "-g", "2000", "--additional-gids", "3000"],
        &id,
        &["cat", "/proc/self/status"],
    )
    .success();
    assert_eq!(field(&out.stdout, "Groups"), "2000 3000");
    down(&env, &id);
}

/// Capability bits: KILL 5, NET_BIND_SERVICE 10, NET_RAW 13, AUDIT_WRITE 29.
const DEFAULT_CAPS: u64 = (1 << 5) | (1 << 10) | (1 << 29);
const NET_RAW: u64 = 1 << 13;

#[test]
fn capabilities_default_to_the_container_and_cap_adds_one() {
    let env = Env::new();
    let (id, _) = running(&env);
    let st = exec(&env, &[], &id, &["cat", "/proc/self/status"])
        .success()
        .stdout;
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(hex(&st, set), DEFAULT_CAPS, "{set}");
    }
    let st = exec(
        &env,
        &["--cap", "CAP_NET_RAW"],
        &id,
        &["cat", "/proc/self/status"],
    )
    .success()
    .stdout;
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(hex(&st, set), DEFAULT_CAPS | NET_RAW, "{set}");
    }
    // Never inheritable or ambient (CVE-2022-29162).
    assert_eq!(hex(&st, "CapInh"), 0);
    assert_eq!(hex(&st, "CapAmb"), 0);
    let st = exec(
        &env,
        &["-c", "CAP_NET_RAW"],
        &id,
        &["cat", "/proc/self/status"],
    )
    .success()
    .stdout;
    assert_eq!(hex(&st, "CapEff"), DEFAULT_CAPS | NET_RAW);
    // As runc 1.5: an unknown name is ignored with a warning.
    let out = exec(&env, &["--cap", "CAP_BOGUS"], &id, &["true"]).success();
    assert!(
        out.stderr.is_empty() || out.stderr.contains("CAP_BOGUS"),
        "{out:?}"
    );
    down(&env, &id);
}

#[test]
fn rlimits_come_from_the_container() {
    let env = Env::new();
    let mut b = env.bundle(&INIT);
    b.config(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888}])
    });
    let (id, _) = up(&env, &b);
    let out = exec(&env, &[], &id, &["cat", "/proc/self/limits"]).success();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&v[3..5], ["777", "888"], "{line}");
    down(&env, &id);
}

#[test]
fn no_new_privs_comes_from_the_container_or_the_flag() {
    let env = Env::new();
    let mut b = env.bundle(&INIT);
    b.config(|c| c["process"]["noNewPrivileges"] = false.into());
    let (id, _) = up(&env, &b);
    let status = |pre: &[&str]| exec(&env, pre, &id, &["cat", "/proc/self/status"]).success();
    assert_eq!(field(&status(&[]).stdout, "NoNewPrivs"), "0");
    assert_eq!(
        field(&status(&["--no-new-privs"]).stdout, "NoNewPrivs"),
        "1"
    );
    down(&env, &id);
    let (id, _) = running(&env);
    let out = exec(&env, &[], &id, &["cat", "/proc/self/status"]).success();
    assert_eq!(
        field(&out.stdout, "NoNewPrivs"),
        "1",
        "config has noNewPrivileges"
    );
    down(&env, &id);
}

#[test]
fn apparmor_and_process_label_fail_clearly_without_the_lsm() {
    // This host's kernel has neither AppArmor nor SELinux. The v2 guest's has AppArmor,
    // where "unconfined" is a real profile: tests/apparmor.rs covers that case there.
    let apparmor = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let mut cases = vec![["--process-label", "system_u:system_r:container_t:s0"]];
    if apparmor {
        eprintln!("--apparmor part skipped: AppArmor is enabled here (see tests/apparmor.rs)");
    } else {
        cases.push(["--apparmor", "unconfined"]);
    }
    let env = Env::new();
    let (id, init) = running(&env);
    for pre in cases {
        let out = exec(&env, &pre, &id, &["true"]).exec_fails();
        assert!(
            out.stderr.contains("is not enabled on this host"),
            "{out:?}"
        );
    }
    assert_eq!(ns_members(init), [(init, 'S')]);
    down(&env, &id);
}

#[test]
fn preserve_fds_passes_fd_3() {
    let env = Env::new();
    let (id, _) = running(&env);
    let path = env.dir.join("passed");
    fs::write(&path, "through fd 3").unwrap();
    let file = fs::File::open(&path).unwrap();
    let run = |cmd: &[&str]| {
        let mut c = env.cmd(&exec_args(&["--preserve-fds", "1"], &id, cmd));
        give_fds(&mut c, &[&file]);
        env.output(c).success().stdout
    };
    assert_eq!(run(&["cat", "/proc/self/fd/3"]), "through fd 3");
    // ls opens one fd of its own for the directory.
    assert_eq!(fd_list(&run(&["ls", "/proc/self/fd"])), [0, 1, 2, 3, 4]);
    // As runc 1.5: fds that the caller did not open are refused up front, so none of
    // ours can take their place.
    let out = exec(&env, &["--preserve-fds", "2"], &id, &["true"]).exec_fails();
    assert!(
        out.stderr.contains("--preserve-fds: fd 3 is not open"),
        "{out:?}"
    );
    down(&env, &id);
}

#[test]
fn no_host_fd_reaches_the_process_without_preserve_fds() {
    let env = Env::new();
    let (id, _) = running(&env);
    let f = fs::File::open(&env.dir).unwrap();
    let g = fs::File::open(common::bin()).unwrap();
    let mut c = env.cmd(&exec_args(&[], &id, &["ls", "/proc/self/fd"]));
    give_fds(&mut c, &[&f, &g, &f]);
    assert_eq!(fd_list(&env.output(c).success().stdout), [0, 1, 2, 3]);
    down(&env, &id);
}

// ---------------------------------------------------------------- terminal

#[test]
fn tty_sends_exactly_one_pty_fd_to_the_console_socket() {
    let env = Env::new();
    let (id, _) = running(&env);
    let sock_path = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let args = exec_args(
        &["-t", "-d", "--console-socket", sock_path.to_str().unwrap()],
        &id,
        &["sh", "-c", "tty; echo done"],
    );
    let mut child = env.spawn(&args, |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    let (conn, _) = listener.accept().unwrap();
    let master = recv_one_fd(conn.as_raw_fd());
    let text = common::read_pty_until(master.as_fd(), "done");
    let tty = text.lines().next().unwrap_or("").trim_end();
    let n = tty
        .strip_prefix("/dev/pts/")
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(n.parse::<u32>().is_ok(), "{text:?}");
    assert_eq!(wait_child(&mut child), 0);
    // Nothing more: EOF, no second fd.
    assert_eq!(recv_rest(conn.as_raw_fd()), (0, 0));
    down(&env, &id);
}

/// `stty size` read through the console socket of `exec -t` with `pre` flags.
fn tty_size_via_console_socket(env: &Env, id: &str, pre: &[&str], name: &str) -> String {
    let sock_path = env.dir.join(format!("{name}.sock"));
    let listener = UnixListener::bind(&sock_path).unwrap();
    let mut flags = vec!["-t", "-d", "--console-socket", sock_path.to_str().unwrap()];
    flags.extend_from_slice(pre);
    let cmd: &[&str] = if pre.contains(&"-p") {
        &[]
    } else {
        &["sh", "-c", "stty size; echo done"]
    };
    let mut child = env.spawn(&exec_args(&flags, id, cmd), |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    let (conn, _) = listener.accept().unwrap();
    let master = recv_one_fd(conn.as_raw_fd());
    let text = common::read_pty_until(master.as_fd(), "done");
    assert_eq!(wait_child(&mut child), 0);
    text.lines().next().unwrap_or("").trim_end().to_string()
}

/// As runc: the config's consoleSize applies to `exec -t` too, and a process.json's own.
#[test]
fn tty_console_size_comes_from_the_config_or_the_process_file() {
    let env = Env::new();
    let mut b = env.bundle(&INIT);
    b.config(|c| c["process"]["consoleSize"] = json!({"height": 20, "width": 90}));
    let (id, _) = up(&env, &b);
    assert_eq!(tty_size_via_console_socket(&env, &id, &[], "cfg"), "20 90");
    let f = env.dir.join("sized.json");
    let process = json!({
        "terminal": true,
        "consoleSize": {"height": 10, "width": 110},
        "args": ["sh", "-c", "stty size; echo done"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    fs::write(&f, process.to_string()).unwrap();
    let size = tty_size_via_console_socket(&env, &id, &["-p", f.to_str().unwrap()], "file");
    assert_eq!(size, "10 110");
    down(&env, &id);
}

#[test]
fn tty_without_console_socket_proxies_in_the_foreground() {
    let env = Env::new();
    let (id, _) = running(&env);
    let out = exec(&env, &["-t"], &id, &["tty"]).success();
    assert!(out.stdout.trim_end().starts_with("/dev/pts/"), "{out:?}");
    down(&env, &id);
}

#[test]
fn tty_misuse_is_refused() {
    let env = Env::new();
    let (id, init) = running(&env);
    let sock = env.dir.join("unused.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    // --tty --detach needs a console socket; a console socket needs --tty and
    // --detach (as in runc: in the foreground paddock proxies the terminal).
    exec(&env, &["-t", "-d"], &id, &["true"]).exec_fails();
    exec(
        &env,
        &["--console-socket", sock.to_str().unwrap()],
        &id,
        &["true"],
    )
    .exec_fails();
    exec(
        &env,
        &["-t", "--console-socket", sock.to_str().unwrap()],
        &id,
        &["true"],
    )
    .exec_fails();
    assert_eq!(ns_members(init), [(init, 'S')]);
    down(&env, &id);
}

// ---------------------------------------------------------------- paused

#[test]
fn ignore_paused_allows_exec_into_a_paused_container() {
    let env = Env::new();
    // `paddock pause` is being written elsewhere; until it exists there is
    // nothing to pause, so this test has nothing to check yet.
    if !env.paddock(&["pause", "--help"]).ok() {
        eprintln!("skipped: this paddock has no pause command");
        return;
    }
    let (id, _) = running(&env);
    env.paddock(&["pause", &id]).success();
    assert_eq!(env.status(&id), "paused");
    let out = exec(&env, &[], &id, &["true"]).exec_fails();
    assert!(out.stderr.contains("paused"), "{out:?}");
    let mut child = env.spawn(
        &exec_args(&["--ignore-paused"], &id, &["echo", "ok"]),
        |c| {
            c.stdout(Stdio::piped()).stderr(Stdio::null());
        },
    );
    env.paddock(&["resume", &id]).success();
    assert_eq!(wait_child(&mut child), 0);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut s).unwrap();
    assert_eq!(s, "ok\n");
    down(&env, &id);
}

// ---------------------------------------------------------------- many execs

#[test]
fn five_hundred_execs_leave_no_zombie_fd_or_process() {
    let env = Env::new();
    let (id, init) = running(&env);
    let fds_before = fd_count(init);
    for _ in 0..500 {
        exec(&env, &[], &id, &["true"]).success();
    }
    assert_eq!(fd_count(init), fds_before, "init gained fds");
    let members = ns_members(init);
    assert!(
        members.iter().all(|&(_, s)| s != 'Z'),
        "zombies: {members:?}"
    );
    assert_eq!(members, [(init, 'S')], "extra processes");
    // From inside too: just init and the ls itself.
    let out = exec(&env, &[], &id, &["ls", "/proc"]).success();
    let pids = out
        .stdout
        .split_whitespace()
        .filter(|e| e.parse::<u32>().is_ok())
        .count();
    assert_eq!(pids, 2, "{out:?}");
    down(&env, &id);
}

#[test]
fn sixteen_concurrent_execs_all_succeed() {
    let env = Env::new();
    let (id, init) = running(&env);
    let outs: Vec<Out> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let (env, id) = (&env, &id);
                s.spawn(move || exec(env, &[], id, &["echo", &format!("n{i}")]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.success().stdout, format!("n{i}\n"));
    }
    assert_eq!(ns_members(init), [(init, 'S')]);
    down(&env, &id);
}

#[test]
fn racing_watcher_never_sees_a_host_path() {
    let env = Env::new();
    let watch = env.mkdir("watch");
    let mut b = env.bundle(&[
        "sh",
        "-c",
        // busybox readlink takes one file per call.
        "while :; do for f in /proc/[0-9]*/exe /proc/[0-9]*/cwd /proc/[0-9]*/fd/*; do \
         readlink $f; done; done >/watch/log 2>/dev/null",
    ]);
    b.add_mount(common::bind(&watch, "/watch", &[]));
    // Null stdio everywhere, so no fd legitimately names a host file.
    let id = env.id("watch");
    let mut create = env.cmd(&["create", "-b", b.dir.to_str().unwrap(), &id]);
    create.stdout(Stdio::null()).stderr(Stdio::null());
    assert!(create.status().unwrap().success());
    env.paddock(&["start", &id]).success();
    for _ in 0..200 {
        let mut c = env.cmd(&exec_args(&[], &id, &["true"]));
        c.stdout(Stdio::null()).stderr(Stdio::null());
        assert!(c.status().unwrap().success());
    }
    down(&env, &id);
    let log = fs::read_to_string(watch.join("log")).unwrap();
    assert!(log.contains("/bin/busybox"), "the watcher ran: {log:?}");
    let mut top: Vec<String> = fs::read_dir(&b.rootfs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.push("watch".into());
    let leaks: Vec<&str> = log.lines().filter(|l| !inside(l, &top)).collect();
    assert!(
        leaks.is_empty(),
        "host paths seen in the container: {leaks:?}"
    );
}
