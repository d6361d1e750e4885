//! NOTIFY_SOCKET passthrough (sd_notify) and --pidfd-socket, as runc does them.

mod common;

use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::parity::{side_by_side, Rt};
use common::{bind, wait_for, Bundle, Env};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// A static sender: each argument is one datagram to $NOTIFY_SOCKET (busybox has
/// no unix datagram client).
const SDNOTIFY_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) return 2;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    for (int i = 1; i < argc; i++) {
        if (sendto(s, argv[i], strlen(argv[i]), 0, (struct sockaddr *)&a, sizeof a) < 0) {
            perror("sendto");
            return 1;
        }
    }
    return 0;
}
"#;

/// A bundle with /sdnotify in its rootfs and the host dir `out` bound at /out.
fn notify_bundle(env: &Env, out: &Path, script: &str) -> Bundle {
    let mut b = env.bundle(&["sh", "-c", script]);
    let src = env.dir.join("sdnotify.c");
    fs::write(&src, SDNOTIFY_C).unwrap();
    let cc = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(b.rootfs.join("sdnotify"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(cc.status.success(), "cc: {cc:?}");
    b.add_mount(bind(out, "/out", &[]));
    b
}

/// The caller's side of sd_notify: a datagram socket in the test's temp dir.
fn listener(env: &Env, name: &str) -> (UnixDatagram, PathBuf) {
    let path = env.dir.join(name);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (sock, path)
}

/// One datagram: its text and how many fds came with it (closed at once, as
/// systemd does with the barrier's pipe).
fn recv_msg(sock: &UnixDatagram) -> Option<(String, usize)> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        ) {
            Ok(m) => break m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("recvmsg on the notify listener: {e}");
                return None;
            }
        }
    };
    let mut nfds = 0;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: received just now, owned by no one else.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                nfds += 1;
            }
        }
    }
    let n = msg.bytes;
    Some((String::from_utf8_lossy(&buf[..n]).into_owned(), nfds))
}

/// The messages runc passes on for a READY=: READY (its first line), MAINPID of the
/// container's init, and (runc 1.5; 1.1.5 has no barrier) BARRIER=1 with one fd.
fn assert_forwarded(sock: &UnixDatagram, ready: &str, pid: i64, rt: Rt) {
    assert_eq!(recv_msg(sock), Some((format!("{ready}\n"), 0)), "{rt:?}");
    let mainpid = Some((format!("MAINPID={pid}\n"), 0));
    assert_eq!(recv_msg(sock), mainpid, "{rt:?}");
    if rt == Rt::Paddock {
        assert_eq!(recv_msg(sock), Some(("BARRIER=1".to_string(), 1)));
    }
}

fn rt_state(env: &Env, rt: Rt, id: &str) -> serde_json::Value {
    serde_json::from_str(&env.rt(rt, &["state", id]).success().stdout).unwrap()
}

/// The barrier paddock sends after READY= and MAINPID=, as runc 1.5 does (1.1.5 sends none).
fn expect_barrier(sock: &UnixDatagram, rt: Rt) {
    if rt == Rt::Paddock {
        assert_eq!(recv_msg(sock), Some(("BARRIER=1".to_string(), 1)));
    }
}

fn with_notify(mut cmd: Command, sock: &Path) -> Command {
    cmd.env("NOTIFY_SOCKET", sock);
    cmd
}

/// What the container saw: its NOTIFY_SOCKET, a socket there, and how /run/notify is mounted.
const REPORT: &str = "echo \"$NOTIFY_SOCKET\" > /out/env; \
    test -S /run/notify/notify.sock && echo socket > /out/sock; \
    grep ' /run/notify ' /proc/mounts | cut -d' ' -f4 | tr , '\\n' | grep -E '^(ro|nosuid|nodev|noexec)$' | sort > /out/opts; ";

#[test]
fn start_waits_for_ready_and_passes_it_on_with_mainpid() {
    let env = Env::new();
    let outs = side_by_side(|rt| {
        let out = env.mkdir("out");
        let script = format!(
            "while [ ! -e /out/go ]; do sleep 0.05; done; {REPORT} \
             /sdnotify STATUS=starting READY=1 STATUS=up; exec sleep 1000"
        );
        let b = notify_bundle(&env, &out, &script);
        let (sock, path) = listener(&env, &format!("{}.sock", rt.name()));
        let id = env.id(rt.name());
        let bdir = b.dir.to_str().unwrap();
        // create returns at once: nothing is bound yet, only the directory is made.
        env.output(with_notify(
            env.rt_cmd(rt, &["create", "-b", bdir, &id]),
            &path,
        ))
        .success();
        let notify_dir = env.rt_root(rt).join(&id).join("notify");
        assert!(notify_dir.is_dir(), "{rt:?}: {notify_dir:?}");
        assert!(!notify_dir.join("notify.sock").exists(), "{rt:?}");
        let mut start = with_notify(env.rt_cmd(rt, &["start", &id]), &path);
        let mut start = start.stdout(Stdio::null()).spawn().unwrap();
        assert!(wait_for(|| rt_state(&env, rt, &id)["status"] == "running"));
        // Until the container says READY=, start has not returned.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            start.try_wait().unwrap().is_none(),
            "{rt:?}: start returned early"
        );
        fs::write(out.join("go"), "").unwrap();
        let pid = rt_state(&env, rt, &id)["pid"].as_i64().unwrap();
        // STATUS= before READY= is not passed on, and what follows READY= neither.
        assert_forwarded(&sock, "READY=1", pid, rt);
        assert!(start.wait().unwrap().success(), "{rt:?}");
        let seen =
            ["env", "sock", "opts"].map(|f| fs::read_to_string(out.join(f)).unwrap_or_default());
        assert!(sock.set_nonblocking(true).is_ok());
        assert!(recv_msg(&sock).is_none(), "{rt:?}: more was forwarded");
        env.rt(rt, &["delete", "--force", &id]).success();
        assert!(!env.rt_root(rt).join(&id).exists(), "{rt:?}");
        seen
    });
    assert_eq!(outs[0], outs[1]);
    assert_eq!(
        outs[1],
        [
            "/run/notify/notify.sock\n".to_string(),
            "socket\n".to_string(),
            "nodev\nnoexec\nnosuid\nro\n".to_string()
        ]
    );
}

#[test]
fn run_detached_waits_for_ready_too() {
    let env = Env::new();
    side_by_side(|rt| {
        let out = env.mkdir("out");
        let b = notify_bundle(&env, &out, "/sdnotify READY=1; exec sleep 1000");
        let (sock, path) = listener(&env, &format!("{}.sock", rt.name()));
        let id = env.id(rt.name());
        let mut run = with_notify(
            env.rt_cmd(rt, &["run", "-d", "-b", b.dir.to_str().unwrap(), &id]),
            &path,
        );
        let mut run = run.stdout(Stdio::null()).spawn().unwrap();
        // The state (and so the pid) exists once READY= is on its way.
        let ready = recv_msg(&sock);
        assert_eq!(ready, Some(("READY=1\n".to_string(), 0)), "{rt:?}");
        let pid = rt_state(&env, rt, &id)["pid"].as_i64().unwrap();
        let mainpid = Some((format!("MAINPID={pid}\n"), 0));
        assert_eq!(recv_msg(&sock), mainpid, "{rt:?}");
        expect_barrier(&sock, rt);
        assert!(run.wait().unwrap().success(), "{rt:?}");
        env.rt(rt, &["delete", "--force", &id]).success();
    });
}

#[test]
fn foreground_run_forwards_ready_and_returns_the_exit_code() {
    let env = Env::new();
    let out = env.mkdir("out");
    let b = notify_bundle(&env, &out, "/sdnotify READY=1 && exit 7");
    let (sock, path) = listener(&env, "fg.sock");
    let id = env.id("fg");
    let mut run = with_notify(env.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]), &path);
    let mut run = run.stdout(Stdio::null()).spawn().unwrap();
    let (ready, _) = recv_msg(&sock).unwrap();
    assert_eq!(ready, "READY=1\n");
    assert!(recv_msg(&sock).unwrap().0.starts_with("MAINPID="));
    assert_eq!(recv_msg(&sock), Some(("BARRIER=1".to_string(), 1)));
    assert_eq!(run.wait().unwrap().code(), Some(7));
    assert!(!env.root.join(&id).exists());
}

#[test]
fn a_container_that_never_says_ready_does_not_hang_start_or_run() {
    // runc 1.5 in the foreground waits on its own pid and so never returns here;
    // paddock stops waiting when the container's init exits.
    let env = Env::new();
    let out = env.mkdir("out");
    let b = notify_bundle(&env, &out, "/sdnotify STATUS=never-ready; exit 3");
    let (sock, path) = listener(&env, "never.sock");
    let id = env.id("never");
    let run = env.output(with_notify(
        env.cmd(&["run", "-b", b.dir.to_str().unwrap(), &id]),
        &path,
    ));
    assert_eq!(run.code, 3, "{run:?}");
    let id = env.id("never-start");
    env.output(with_notify(
        env.cmd(&["create", "-b", b.dir.to_str().unwrap(), &id]),
        &path,
    ))
    .success();
    env.output(with_notify(env.cmd(&["start", &id]), &path))
        .success();
    sock.set_nonblocking(true).unwrap();
    assert!(
        recv_msg(&sock).is_none(),
        "nothing is forwarded without READY="
    );
    env.paddock(&["delete", &id]).success();
}

#[test]
fn start_fails_when_the_callers_socket_is_missing() {
    // As runc: start connects to NOTIFY_SOCKET and fails when it cannot.
    let env = Env::new();
    let out = env.mkdir("out");
    let b = notify_bundle(&env, &out, "exec sleep 1000");
    let path = env.dir.join("absent.sock");
    let id = env.id("absent");
    env.output(with_notify(
        env.cmd(&["create", "-b", b.dir.to_str().unwrap(), &id]),
        &path,
    ))
    .success();
    let start = env.output(with_notify(env.cmd(&["start", &id]), &path));
    assert_eq!(start.code, 1, "{start:?}");
    assert!(start.stderr.contains("NOTIFY_SOCKET"), "{start:?}");
    env.paddock(&["delete", "--force", &id]).success();
}

/// The pid a pidfd refers to, from /proc/self/fdinfo.
fn pidfd_pid(fd: &OwnedFd) -> i64 {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("Pid:"))
        .expect("a pidfd");
    line["Pid:".len()..].trim().parse().unwrap()
}

fn pidfd_kill(fd: &OwnedFd) {
    // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

/// Receives the one message runc sends: `name` carrying one pidfd.
fn recv_pidfd(l: &UnixListener, name: &str) -> OwnedFd {
    let (conn, _) = l.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fds: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: received just now, owned by no one else.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let n = msg.bytes;
    assert_eq!(&buf[..n], name.as_bytes());
    assert_eq!(fds.len(), 1, "one fd");
    fds.pop().unwrap()
}

// runc 1.1.5 has no --pidfd-socket (runc 1.2 added it): paddock alone, as 1.5 behaves.
#[test]
fn pidfd_socket_gets_the_init_of_create_and_run() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    for verb in ["create", "run"] {
        let path = env.dir.join(format!("{verb}-pidfd.sock"));
        let l = UnixListener::bind(&path).unwrap();
        let id = env.id(verb);
        let mut args = vec![verb, "--pidfd-socket", path.to_str().unwrap()];
        if verb == "run" {
            args.push("-d");
        }
        args.extend(["-b", b.dir.to_str().unwrap(), &id]);
        env.paddock(&args).success();
        let fd = recv_pidfd(&l, "standard");
        assert_eq!(
            pidfd_pid(&fd),
            env.state(&id)["pid"].as_i64().unwrap(),
            "{verb}"
        );
        pidfd_kill(&fd);
        assert!(env.wait_status(&id, "stopped"), "{verb}");
        env.paddock(&["delete", &id]).success();
    }
}

#[test]
fn pidfd_socket_gets_the_exec_process() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("ex");
    env.paddock(&["run", "-d", "-b", b.dir.to_str().unwrap(), &id])
        .success();
    let path = env.dir.join("exec-pidfd.sock");
    let l = UnixListener::bind(&path).unwrap();
    let pid_file = env.dir.join("exec.pid");
    env.paddock(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--pidfd-socket",
        path.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .success();
    let fd = recv_pidfd(&l, "setns");
    let pid: i64 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(pidfd_pid(&fd), pid);
    pidfd_kill(&fd);
    assert!(wait_for(|| !Path::new(&format!("/proc/{pid}")).exists()
        || fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.contains(") Z "))));
    assert_eq!(env.status(&id), "running");
    env.paddock(&["delete", "--force", &id]).success();
}

#[test]
fn a_bad_pidfd_socket_fails_with_nothing_left_behind() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let path = env.dir.join("nobody-listens.sock");
    let id = env.id("bad");
    let out = env.paddock(&[
        "create",
        "--pidfd-socket",
        path.to_str().unwrap(),
        "-b",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    let out = out.fails_with_one_line();
    assert!(out.stderr.contains("--pidfd-socket"), "{out:?}");
    assert!(!env.root.join(&id).exists());
    env.assert_clean();
}

#[test]
fn an_abstract_notify_socket_works_as_in_runc() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;
    let env = Env::new();
    side_by_side(|rt| {
        let out = env.mkdir("out");
        let b = notify_bundle(&env, &out, "/sdnotify READY=1; exec sleep 1000");
        let name = format!("paddock-test-{}-{}", std::process::id(), rt.name());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let id = env.id(rt.name());
        let mut run = env.rt_cmd(rt, &["run", "-d", "-b", b.dir.to_str().unwrap(), &id]);
        run.env("NOTIFY_SOCKET", format!("@{name}"));
        let mut run = run.stdout(Stdio::null()).spawn().unwrap();
        assert_eq!(
            recv_msg(&sock).map(|m| m.0),
            Some("READY=1\n".into()),
            "{rt:?}"
        );
        assert!(recv_msg(&sock).unwrap().0.starts_with("MAINPID="), "{rt:?}");
        expect_barrier(&sock, rt);
        assert!(run.wait().unwrap().success(), "{rt:?}");
        env.rt(rt, &["delete", "--force", &id]).success();
    });
}

#[test]
fn exec_processes_do_not_get_the_notify_socket() {
    // Only init: runc's exec reads the bundle's config.json, which does not have it.
    let env = Env::new();
    let out = env.mkdir("out");
    let b = notify_bundle(&env, &out, "exec sleep 1000");
    let path = env.dir.join("unused.sock");
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        let create = env.rt_cmd(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
        env.output(with_notify(create, &path)).success();
        let seen = env.rt(rt, &["exec", &id, "sh", "-c", "echo \"[$NOTIFY_SOCKET]\""]);
        env.rt(rt, &["delete", "--force", &id]).success();
        seen
    });
    common::parity::assert_same("exec env", &outs);
    assert_eq!(outs[1].stdout, "[]\n");
}

/// runc 1.1.5 never gets READY= here (init cannot reach the socket's directory);
/// runc 1.5 opens the bind source for init from the host side, as paddock does.
#[test]
fn notify_socket_works_in_a_user_namespace() {
    let env = Env::new();
    let rt = Rt::Paddock;
    let out = env.mkdir("out");
    let mut b = notify_bundle(&env, &out, "/sdnotify READY=1; exec sleep 1000");
    // The container's root is host 100000: it cannot reach the runtime's 0700
    // state directory, where the socket lives.
    b.set_namespace(serde_json::json!({"type": "user"}));
    b.config(|c| {
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    // Owned by the container's root, as image tools prepare it for a user namespace.
    let st = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(&b.rootfs)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let (sock, path) = listener(&env, "userns.sock");
    let id = env.id(rt.name());
    let mut run = with_notify(
        env.rt_cmd(rt, &["run", "-d", "-b", b.dir.to_str().unwrap(), &id]),
        &path,
    );
    let mut run = run.stdout(Stdio::null()).spawn().unwrap();
    let ready = recv_msg(&sock);
    assert_eq!(ready, Some(("READY=1\n".to_string(), 0)));
    assert!(run.wait().unwrap().success());
    env.rt(rt, &["delete", "--force", &id]).success();
}
