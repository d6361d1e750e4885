//! process: args, env, cwd, user, umask, rlimits, oom, capabilities, fds, terminal.
mod common;

use std::fs;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;

use common::{recv_one_fd, Env};
use serde_json::{json, Value};

const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn mask(list: &Value) -> u64 {
    list.as_array().map_or(0, |l| {
        l.iter().fold(0, |m, c| {
            let name = c.as_str().unwrap().trim_start_matches("CAP_");
            m | 1 << CAPS.iter().position(|n| *n == name).unwrap()
        })
    })
}

/// Value of a `Key:\tvalue` line of /proc/self/status text.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in {status}"))
        .trim()
}

#[test]
fn args_env_and_cwd() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| {
        c["process"]["cwd"] = "/tmp".into();
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    });
    let script = r#"printf '%s|' "$@"; echo; pwd; echo "$FOO""#;
    let out = env.run_args(&mut b, &["sh", "-c", script, "sh", "a b", "c"]);
    assert_eq!(out.stdout, "a b|c|\n/tmp\nbar baz\n");
}

#[test]
fn host_environment_does_not_leak() {
    let env = Env::new();
    let b = env.bundle(&["env"]);
    let id = env.id("env");
    let mut cmd = env.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]);
    cmd.env("PADDOCK_LEAK_CHECK", "1");
    let out = env.output(cmd).success();
    assert!(!out.stdout.contains("PADDOCK_LEAK_CHECK"), "{out:?}");
    assert!(out.stdout.contains("TERM=xterm"), "{out:?}");
}

/// HOME from the container's /etc/passwd (as runc), but never from a planted FIFO
/// (which must not hang create) or a link into /proc (the runtime's own environment).
#[test]
fn home_is_looked_up_safely_in_the_containers_passwd() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| c["process"]["env"] = json!(["PATH=/bin"]));
    assert_eq!(env.run_sh(&mut b, "echo $HOME").stdout, "/root\n");
    let passwd = b.rootfs.join("etc/passwd");
    fs::remove_file(&passwd).unwrap();
    nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    assert_eq!(env.run_sh(&mut b, "echo $HOME").stdout, "/\n");
    fs::remove_file(&passwd).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", &passwd).unwrap();
    let id = env.id("home");
    let mut cmd = env.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]);
    b.args(&["sh", "-c", "echo $HOME"]);
    // Alone in the environment, it would read as the passwd line of uid 0.
    cmd.env_clear().env("LEAK", "x:x:0:0:x:/host-secret:x");
    let out = env.output(cmd).success();
    assert_eq!(out.stdout, "/\n");
}

/// The container's own terminal goes to its user; a caller's terminal passed as
/// stdio (no process.terminal) keeps its host owner.
#[test]
fn only_the_containers_own_pty_is_given_to_its_user() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave_path = fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let before = fs::metadata(&slave_path).unwrap().uid();
    let id = env.id("hostpty");
    let mut cmd = env.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]);
    cmd.stdin(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    env.output(cmd).success();
    assert_eq!(fs::metadata(&slave_path).unwrap().uid(), before);
}

#[test]
fn user_uid_gid_and_additional_gids_are_exact() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]})
    });
    let out = env.run_sh(&mut b, "id; cat /proc/self/status");
    let (id, status) = out.stdout.split_once('\n').unwrap();
    assert!(id.starts_with("uid=1000(u1000) gid=1000(g1000)"), "{id}");
    assert!(id.contains("2000(g2000)") && !id.contains("(root)"), "{id}");
    assert_eq!(field(status, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(status, "Gid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(status, "Groups"), "2000");
}

#[test]
fn root_user_has_no_supplementary_groups_by_default() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_args(&mut b, &["cat", "/proc/self/status"]);
    assert_eq!(field(&out.stdout, "Groups"), "");
}

#[test]
fn umask_is_applied() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| c["process"]["user"]["umask"] = 0o077.into());
    let out = env.run_sh(&mut b, "umask");
    assert_eq!(out.stdout.trim(), "0077");
}

#[test]
fn rlimit_nofile_is_applied() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1000, "soft": 1000}])
    });
    let out = env.run_sh(&mut b, "ulimit -n; ulimit -Hn");
    assert_eq!(out.stdout, "1000\n1000\n");
}

#[test]
fn oom_score_adj_is_applied() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| c["process"]["oomScoreAdj"] = 500.into());
    let out = env.run_args(&mut b, &["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(out.stdout, "500\n");
}

#[test]
fn default_capabilities_match_the_config() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let caps = b.cfg()["process"]["capabilities"].clone();
    let out = env.run_args(&mut b, &["cat", "/proc/self/status"]);
    let s = &out.stdout;
    assert_eq!(
        field(s, "CapEff"),
        format!("{:016x}", mask(&caps["effective"]))
    );
    assert_eq!(
        field(s, "CapPrm"),
        format!("{:016x}", mask(&caps["permitted"]))
    );
    assert_eq!(
        field(s, "CapBnd"),
        format!("{:016x}", mask(&caps["bounding"]))
    );
    assert_eq!(
        field(s, "CapInh"),
        format!("{:016x}", mask(&caps["inheritable"]))
    );
    assert_eq!(
        field(s, "CapAmb"),
        format!("{:016x}", mask(&caps["ambient"]))
    );
    assert_eq!(field(s, "CapEff"), "0000000020000420");
}

#[test]
fn ambient_capabilities_for_a_non_root_user() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_SETUID", "CAP_NET_RAW"],
            "effective": ["CAP_NET_RAW"],
            "permitted": ["CAP_CHOWN", "CAP_NET_RAW"],
            "inheritable": ["CAP_NET_RAW"],
            "ambient": ["CAP_NET_RAW"],
        });
    });
    let out = env.run_args(&mut b, &["cat", "/proc/self/status"]);
    let s = &out.stdout;
    let raw = format!("{:016x}", 1u64 << 13);
    assert_eq!(
        field(s, "CapBnd"),
        format!("{:016x}", 1u64 | 1 << 7 | 1 << 13)
    );
    assert_eq!(field(s, "CapInh"), raw);
    assert_eq!(field(s, "CapAmb"), raw);
    assert_eq!(field(s, "CapPrm"), raw);
    assert_eq!(field(s, "CapEff"), raw);
}

#[test]
fn no_new_privileges_true_and_false() {
    let env = Env::new();
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut b = env.bundle(&[]);
        b.config(|c| c["process"]["noNewPrivileges"] = nnp.into());
        let out = env.run_args(&mut b, &["cat", "/proc/self/status"]);
        assert_eq!(field(&out.stdout, "NoNewPrivs"), want);
    }
}

/// `paddock run` with `file` open as fd 3 in paddock (and so in the container if preserved).
fn run_with_fd3(env: &Env, b: &common::Bundle, preserve: bool, file: &fs::File) -> common::Out {
    let id = env.id("fds");
    let bdir = b.dir.to_str().unwrap();
    let mut args = vec!["run", "-b", bdir, &id];
    if preserve {
        args.splice(1..1, ["--preserve-fds", "1"]);
    }
    let mut cmd = env.cmd(&args);
    let raw = file.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe; fd 3 ends up without CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            // dup2(3, 3) would keep FD_CLOEXEC, so clear it by hand in that case.
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    env.output(cmd).success()
}

fn fd_list(out: &str) -> Vec<u32> {
    let mut v: Vec<u32> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn preserve_fds_passes_fd_3_and_nothing_else() {
    let env = Env::new();
    let path = env.dir.join("passed");
    fs::write(&path, "through fd 3").unwrap();
    let file = fs::File::open(&path).unwrap();
    let b = env.bundle(&["cat", "/proc/self/fd/3"]);
    assert_eq!(run_with_fd3(&env, &b, true, &file).stdout, "through fd 3");
    let b = env.bundle(&["ls", "/proc/self/fd"]);
    // ls opens one fd of its own for the directory.
    assert_eq!(
        fd_list(&run_with_fd3(&env, &b, true, &file).stdout),
        [0, 1, 2, 3, 4]
    );
}

#[test]
fn no_extra_fds_leak_without_preserve_fds() {
    let env = Env::new();
    let path = env.dir.join("notpassed");
    fs::write(&path, "x").unwrap();
    let file = fs::File::open(&path).unwrap();
    let b = env.bundle(&["ls", "/proc/self/fd"]);
    assert_eq!(
        fd_list(&run_with_fd3(&env, &b, false, &file).stdout),
        [0, 1, 2, 3]
    );
}

#[test]
fn missing_executable_fails_create_and_leaves_nothing() {
    let env = Env::new();
    let b = env.bundle(&["/no/such/program"]);
    let id = env.id("noexec");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("/no/such/program"), "{out:?}");
    env.assert_clean();
}

#[test]
fn console_socket_receives_one_pty_master() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "tty; echo ok"]);
    b.config(|c| c["process"]["terminal"] = true.into());
    let sock_path = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let id = env.id("tty");
    let bdir = b.dir.to_str().unwrap();
    env.paddock(&[
        "create",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "-b",
        bdir,
        &id,
    ])
    .success();
    let (conn, _) = listener.accept().unwrap();
    let master = recv_one_fd(conn.as_raw_fd());
    env.paddock(&["start", &id]).success();
    let text = common::read_pty_until(master.as_fd(), "ok");
    assert!(
        text.contains("/dev/console") || text.contains("/dev/pts/0"),
        "{text:?}"
    );
    assert!(text.contains("ok"), "{text:?}");
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
}

#[test]
fn terminal_without_console_socket_is_rejected() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["process"]["terminal"] = true.into());
    let id = env.id("notty");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("console-socket"), "{out:?}");
    env.assert_clean();
}
