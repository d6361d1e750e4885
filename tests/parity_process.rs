//! The parity suite, process part: terminal, environment, hooks, fd hygiene, exec's
//! capabilities, process.json and exit codes — the same bundle and command through
//! Debian's runc and through paddock, compared as a caller sees them.
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::parity::{assert_same, assert_same_code, side_by_side, Rt};
use common::{bind, Bundle, Env, Out};
use serde_json::{json, Value};

/// `rt run -d` of `b`: returns the new container's ID once it runs.
fn up(env: &Env, rt: Rt, b: &Bundle) -> String {
    let id = env.id(rt.name());
    let out = env.rt(rt, &["run", "-d", "-b", b.dir.to_str().unwrap(), &id]);
    assert!(out.ok(), "{rt:?} run -d: {out:?}");
    id
}

fn down(env: &Env, rt: Rt, id: &str) {
    let out = env.rt(rt, &["delete", "--force", id]);
    assert!(out.ok(), "{rt:?} delete: {out:?}");
}

/// A sleeping container per runtime, `f` run against each, then both removed.
fn with_running<T>(env: &Env, b: &Bundle, f: impl Fn(Rt, &str) -> T) -> [T; 2] {
    side_by_side(|rt| {
        let id = up(env, rt, b);
        let r = f(rt, &id);
        down(env, rt, &id);
        r
    })
}

/// Runs `cmd` with a fresh pty as stdin (the caller's terminal; stdout and stderr
/// stay files), as a user typing into a terminal while a script reads the output.
fn on_pty(env: &Env, mut cmd: Command) -> Out {
    let pty = nix::pty::openpty(None, None).unwrap();
    cmd.stdin(Stdio::from(pty.slave));
    let out = env.output(cmd);
    drop(pty.master);
    out
}

/// Output read through a terminal may start with a NUL (both runtimes); the text is the rest.
fn text(out: &Out) -> String {
    out.stdout.trim_start_matches('\0').to_string()
}

fn terminal_bundle(env: &Env, args: &[&str]) -> Bundle {
    let mut b = env.bundle(args);
    b.config(|c| c["process"]["terminal"] = true.into());
    b
}

#[test]
fn terminal_output_through_a_pipe_has_no_carriage_returns() {
    let env = Env::new();
    // The sleep lets runc clear ONLCR before the program writes (it does so on receipt).
    let script = "sleep 0.5; echo one; echo two";
    let b = terminal_bundle(&env, &["sh", "-c", script]);
    let outs = run_on_pty(&env, &b);
    assert_eq!(text(&outs[0]), text(&outs[1]), "run -t: {outs:?}");
    assert_eq!(text(&outs[1]), "one\ntwo\n");

    let b = env.bundle(&["sleep", "1000"]);
    let outs = with_running(&env, &b, |rt, id| {
        on_pty(
            &env,
            env.rt_cmd(rt, &["exec", "-t", id, "sh", "-c", script]),
        )
    });
    assert_eq!(text(&outs[0]), text(&outs[1]), "exec -t: {outs:?}");
    assert_eq!(text(&outs[1]), "one\ntwo\n");
}

/// `run -b B` in the foreground of a pty, through runc and paddock.
fn run_on_pty(env: &Env, b: &Bundle) -> [Out; 2] {
    side_by_side(|rt| {
        let id = env.id(rt.name());
        on_pty(
            env,
            env.rt_cmd(rt, &["run", "-b", b.dir.to_str().unwrap(), &id]),
        )
    })
}

#[test]
fn the_pty_belongs_to_the_process_user() {
    let env = Env::new();
    let owner = "stat -c %u:%g $(tty)";
    let mut b = terminal_bundle(&env, &["sh", "-c", owner]);
    b.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let outs = run_on_pty(&env, &b);
    assert_eq!(text(&outs[0]), text(&outs[1]), "run -t: {outs:?}");
    // The group stays devpts's gid=5 (runc changes only the owner).
    assert_eq!(text(&outs[1]).trim_end(), "1000:5");

    let b = env.bundle(&["sleep", "1000"]);
    let outs = with_running(&env, &b, |rt, id| {
        on_pty(
            &env,
            env.rt_cmd(rt, &["exec", "-t", "-u", "1000", id, "sh", "-c", owner]),
        )
    });
    assert_eq!(text(&outs[0]), text(&outs[1]), "exec -t -u: {outs:?}");
    assert_eq!(text(&outs[1]).trim_end(), "1000:5");
}

#[test]
fn home_comes_from_the_containers_passwd_when_missing_or_empty() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "echo $HOME"]);
    // The test rootfs's passwd: root -> /root, 1000 -> /tmp; 4242 is not listed.
    let cases: [(Value, &[&str]); 5] = [
        (json!(0), &[]),
        (json!(0), &["HOME="]),
        (json!(0), &["HOME=/custom"]),
        (json!(1000), &[]),
        (json!(4242), &[]),
    ];
    let base: Vec<Value> = b.cfg()["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap().starts_with("HOME="))
        .cloned()
        .collect();
    for (uid, extra) in cases {
        b.config(|c| {
            let mut e = base.clone();
            e.extend(extra.iter().map(|x| Value::from(*x)));
            c["process"]["env"] = e.into();
            c["process"]["user"]["uid"] = uid.clone();
        });
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        assert_same(&format!("run uid {uid} env {extra:?}"), &outs);
    }

    let b = env.bundle(&["sleep", "1000"]);
    let flags: [&[&str]; 5] = [
        &[],
        &["-e", "HOME="],
        &["-u", "1000"],
        &["-u", "4242"],
        &["-u", "1000", "-e", "HOME=/x"],
    ];
    let outs = with_running(&env, &b, |rt, id| {
        flags
            .iter()
            .map(|f| {
                let mut args = vec!["exec"];
                args.extend_from_slice(f);
                args.extend([id, "sh", "-c", "echo $HOME"]);
                env.rt(rt, &args).stdout
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(outs[0], outs[1], "exec {flags:?}");
    assert_eq!(outs[1], ["/root\n", "/root\n", "/tmp\n", "/\n", "/x\n"]);
}

/// A hook running `sh -c script`.
fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

#[test]
fn a_failing_hook_is_reported_with_its_kind_number_and_output() {
    let env = Env::new();
    for (kind, index) in [
        ("prestart", 1),
        ("createRuntime", 0),
        ("createContainer", 1),
    ] {
        let mut b = env.bundle(&["true"]);
        if index == 1 {
            b.push(|c| &mut c["hooks"][kind], json!({"path": "/bin/true"}));
        }
        b.push(
            |c| &mut c["hooks"][kind],
            sh_hook("echo o; echo e >&2; exit 3"),
        );
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        assert_same_code(kind, &outs);
        // runc 1.5's wording (1.1.5 says "error running hook #N: error running hook: ...").
        let want = format!(
            "error running {kind} hook #{index}: exit status 3, stdout: o\\n, stderr: e\\n"
        );
        assert!(outs[1].stderr.contains(&want), "{kind}: {:?}", outs[1]);
        assert_eq!(outs[1].stderr.lines().count(), 1, "{:?}", outs[1]);
    }
    env.assert_clean();
}

#[test]
fn hooks_get_runcs_cwd_and_environment() {
    let env = Env::new();
    let log = env.mkdir("hooklog");
    let mut b = env.bundle(&["true"]);
    b.add_mount(bind(&log, "/hooklog", &[]));
    // createContainer: in the container's mount namespace, before pivot_root.
    let cwd_file = log.join("cwd");
    b.push(
        |c| &mut c["hooks"]["createContainer"],
        sh_hook(&format!("pwd > {}", cwd_file.display())),
    );
    // startContainer: in the container; without env of its own it gets the process's.
    b.push(
        |c| &mut c["hooks"]["startContainer"],
        sh_hook("env | sort > /hooklog/env"),
    );
    let outs = side_by_side(|rt| {
        let out = env.rt_run(rt, &b);
        let cwd = fs::read_to_string(&cwd_file).unwrap_or_default();
        let hook_env = fs::read_to_string(log.join("env")).unwrap_or_default();
        let _ = fs::remove_file(&cwd_file);
        let _ = fs::remove_file(log.join("env"));
        (out.code, cwd, hook_env)
    });
    assert_eq!(outs[0], outs[1]);
    let (code, cwd, hook_env) = &outs[1];
    assert_eq!(*code, 0);
    assert!(Path::new(cwd.trim_end()).ends_with("rootfs"), "{cwd}");
    assert!(hook_env.contains("HOME=/root\n"), "{hook_env}");
    assert!(hook_env.contains("PATH="), "{hook_env}");
}

#[test]
fn start_container_hooks_run_under_the_seccomp_filter() {
    let env = Env::new();
    let log = env.mkdir("hooklog");
    let mut b = env.bundle(&["true"]);
    b.add_mount(bind(&log, "/hooklog", &[]));
    b.config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        })
    });
    b.push(
        |c| &mut c["hooks"]["startContainer"],
        sh_hook("mkdir /hooklog/d 2>/dev/null; echo $? > /hooklog/rc"),
    );
    for nnp in [true, false] {
        b.config(|c| c["process"]["noNewPrivileges"] = nnp.into());
        let outs = side_by_side(|rt| {
            let out = env.rt_run(rt, &b);
            let rc = fs::read_to_string(log.join("rc")).unwrap_or_default();
            let _ = fs::remove_file(log.join("rc"));
            let _ = fs::remove_dir(log.join("d"));
            (out.code, rc)
        });
        assert_eq!(outs[0], outs[1], "noNewPrivileges {nnp}");
        assert_eq!(outs[1], (0, "1\n".to_string()), "noNewPrivileges {nnp}");
    }
}

#[test]
fn only_stdio_reaches_the_container_when_the_caller_leaks_fds() {
    let env = Env::new();
    let out_dir = env.mkdir("fds");
    let list = "ls /proc/self/fd | tr '\\n' ' '";
    let mut b = env.bundle(&["sh", "-c", list]);
    b.add_mount(bind(&out_dir, "/out", &[]));
    let dir = b.dir.to_str().unwrap().to_string();

    // Foreground run, and a terminal run.
    let outs = side_by_side(|rt| {
        let mut cmd = env.rt_cmd(rt, &["run", "-b", &dir, &env.id(rt.name())]);
        common::leak_fds(&mut cmd, &[4, 10]);
        env.output(cmd)
    });
    assert_same("run", &outs);
    assert_eq!(outs[1].stdout, "0 1 2 3 ");
    let mut t = terminal_bundle(&env, &["sh", "-c", list]);
    let tdir = t.dir.to_str().unwrap().to_string();
    t.add_mount(bind(&out_dir, "/out", &[]));
    let outs = side_by_side(|rt| {
        let mut cmd = env.rt_cmd(rt, &["run", "-b", &tdir, &env.id(rt.name())]);
        common::leak_fds(&mut cmd, &[4, 10]);
        on_pty(&env, cmd)
    });
    assert_eq!(text(&outs[0]), text(&outs[1]), "run -t: {outs:?}");
    assert_eq!(text(&outs[1]), "0 1 2 3 ");

    // Detached run, and create + start: the list goes to a file.
    b.args(&["sh", "-c", &format!("{list} > /out/list")]);
    let listed = |rt: Rt, steps: &[&[&str]]| {
        for step in steps {
            let mut cmd = env.rt_cmd(rt, step);
            common::leak_fds(&mut cmd, &[4, 10]);
            assert!(env.output(cmd).ok(), "{rt:?} {step:?}");
        }
        common::wait_for(|| out_dir.join("list").exists());
        std::thread::sleep(std::time::Duration::from_millis(100));
        let text = fs::read_to_string(out_dir.join("list")).unwrap_or_default();
        let _ = fs::remove_file(out_dir.join("list"));
        text
    };
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        let text = listed(rt, &[&["run", "-d", "-b", &dir, &id]]);
        down(&env, rt, &id);
        text
    });
    assert_eq!(outs[0], outs[1], "run -d");
    assert_eq!(outs[1], "0 1 2 3 ");
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        let text = listed(rt, &[&["create", "-b", &dir, &id], &["start", &id]]);
        down(&env, rt, &id);
        text
    });
    assert_eq!(outs[0], outs[1], "create + start");
    assert_eq!(outs[1], "0 1 2 3 ");

    // exec: foreground, terminal, detached.
    b.args(&["sleep", "1000"]);
    let outs = with_running(&env, &b, |rt, id| {
        let mut fg = env.rt_cmd(rt, &["exec", id, "sh", "-c", list]);
        common::leak_fds(&mut fg, &[4, 10]);
        let mut tty = env.rt_cmd(rt, &["exec", "-t", id, "sh", "-c", list]);
        common::leak_fds(&mut tty, &[4, 10]);
        let detached = format!("{list} > /out/list");
        let d = listed(rt, &[&["exec", "-d", id, "sh", "-c", &detached]]);
        [env.output(fg).stdout, text(&on_pty(&env, tty)), d]
    });
    assert_eq!(outs[0], outs[1], "exec, exec -t, exec -d");
    assert_eq!(outs[1], ["0 1 2 3 ", "0 1 2 3 ", "0 1 2 3 "]);
}

fn cap_amb(out: &Out) -> String {
    out.stdout
        .lines()
        .find(|l| l.starts_with("CapAmb:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn exec_cap_is_raised_in_the_ambient_set_too() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "1000"]);
    b.config(|c| {
        let caps = &mut c["process"]["capabilities"];
        caps["bounding"]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_TIME".into());
        caps["inheritable"] = json!(["CAP_SYS_TIME"]);
    });
    let outs = with_running(&env, &b, |rt, id| {
        let out = env.rt(
            rt,
            &[
                "exec",
                "--cap",
                "CAP_SYS_TIME",
                id,
                "cat",
                "/proc/self/status",
            ],
        );
        (out.code, cap_amb(&out))
    });
    assert_eq!(outs[0], outs[1]);
    // CAP_SYS_TIME is capability 25.
    assert_eq!(outs[1], (0, "CapAmb:\t0000000002000000".to_string()));

    // runc 1.5: without an inheritable set in the config, no ambient cap is added.
    b.config(|c| {
        c["process"]["capabilities"]
            .as_object_mut()
            .unwrap()
            .remove("inheritable");
    });
    let id = up(&env, Rt::Paddock, &b);
    let out = env.rt(
        Rt::Paddock,
        &[
            "exec",
            "--cap",
            "CAP_SYS_TIME",
            &id,
            "cat",
            "/proc/self/status",
        ],
    );
    assert_eq!(cap_amb(&out), "CapAmb:\t0000000000000000", "{out:?}");
    down(&env, Rt::Paddock, &id);
}

#[test]
fn exec_failures_exit_255_with_the_wording_podman_maps() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let bad = b.rootfs.join("bad");
    fs::write(&bad, b"\x01\x02 not a program").unwrap();
    fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cases: [(&str, &str); 4] = [
        ("nope", "executable file not found in $PATH"),
        ("/nope", "no such file or directory"),
        ("/etc/passwd", "permission denied"),
        ("/etc", ""),
    ];
    let outs = with_running(&env, &b, |rt, id| {
        let mut v: Vec<Out> = cases
            .iter()
            .map(|(p, _)| env.rt(rt, &["exec", id, p]))
            .collect();
        v.push(env.rt(rt, &["exec", "missing-container", "true"]));
        v.push(env.rt(rt, &["exec", id, "/bad"]));
        v
    });
    for (i, (prog, words)) in cases.iter().enumerate() {
        assert_eq!(outs[0][i].code, outs[1][i].code, "{prog}: {outs:?}");
        assert_eq!(outs[1][i].code, 255, "{prog}");
        assert!(
            outs[1][i].stderr.contains(words),
            "{prog}: {:?}",
            outs[1][i]
        );
    }
    assert_eq!(outs[0][4].code, outs[1][4].code, "missing container");
    // A failed execve: runc 1.5's init exits 255 (1.1.5's exits 1).
    assert_eq!(outs[1][5].code, 255, "{:?}", outs[1][5]);
    assert!(outs[1][5].stderr.contains("exec /bad"), "{:?}", outs[1][5]);
}

#[test]
fn process_json_without_user_runs_as_root_and_without_cwd_fails() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let no_user = env.dir.join("no-user.json");
    let path = r#""env": ["PATH=/bin"]"#;
    fs::write(
        &no_user,
        format!(r#"{{"args": ["id", "-u"], "cwd": "/", {path}}}"#),
    )
    .unwrap();
    let no_cwd = env.dir.join("no-cwd.json");
    fs::write(
        &no_cwd,
        r#"{"args": ["id", "-u"], "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let outs = with_running(&env, &b, |rt, id| {
        let p = |f: &Path| env.rt(rt, &["exec", "-p", f.to_str().unwrap(), id]);
        (p(&no_user), p(&no_cwd))
    });
    assert_same("no user", &[outs[0].0.clone(), outs[1].0.clone()]);
    assert_eq!(outs[1].0.stdout, "0\n");
    assert_same_code("no cwd", &[outs[0].1.clone(), outs[1].1.clone()]);
    assert_eq!(outs[1].1.code, 255);
}

/// A console socket is for a caller that detaches: in the foreground both refuse it.
#[test]
fn a_console_socket_without_detach_is_refused() {
    let env = Env::new();
    let sock = env.dir.join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let sock = sock.to_str().unwrap();
    let b = terminal_bundle(&env, &["true"]);
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        env.rt(
            rt,
            &[
                "run",
                "--console-socket",
                sock,
                "-b",
                b.dir.to_str().unwrap(),
                &id,
            ],
        )
    });
    assert_same_code("run --console-socket", &outs);
    assert_eq!(outs[1].code, 1);
    let b = env.bundle(&["sleep", "1000"]);
    let outs = with_running(&env, &b, |rt, id| {
        env.rt(rt, &["exec", "-t", "--console-socket", sock, id, "true"])
    });
    assert_same_code("exec -t --console-socket", &outs);
    assert_eq!(outs[1].code, 255);
    env.assert_clean();
}

/// After start, init's own failure is the container's exit code: runc 1.5's init
/// exits 255 (1.1.5's exits 1), so paddock's code is checked alone.
#[test]
fn a_failing_start_container_hook_ends_the_container_with_255() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.push(|c| &mut c["hooks"]["startContainer"], sh_hook("exit 5"));
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_ne!(outs[0].code, 0, "{:?}", outs[0]);
    assert_eq!(outs[1].code, 255, "{:?}", outs[1]);
    assert!(
        outs[1]
            .stderr
            .contains("error running startContainer hook #0: exit status 5"),
        "{:?}",
        outs[1]
    );
    env.assert_clean();
}
