//! The parity suite, general part: the same bundle and command through Debian's runc
//! and through paddock, compared as a caller sees them (exit code, stdout, the effect).
//! Area cases live in `parity_<area>.rs`; intended differences are listed in README
//! ("Differences from runc"). Where runc 1.5 changed what Debian's 1.1.5 does, the case
//! asserts paddock's 1.5 behaviour alone and says so.
mod common;

use std::fs;

use common::parity::{assert_same, assert_same_code, side_by_side, Rt, BOTH};
use common::{wait_for, Env};
use serde_json::Value;

#[test]
fn a_bundle_from_runc_spec_runs_unmodified() {
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sh", "-c", "echo hello; id -u"]);
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("runc spec bundle", &outs);
    assert_eq!(outs[1].stdout, "hello\n0\n");
}

#[test]
fn unknown_capabilities_are_ignored_with_one_warning_on_stderr() {
    let env = Env::new();
    let mut b = env.runc_spec_bundle(&["sh", "-c", "grep CapBnd /proc/self/status"]);
    b.config(|c| {
        let bounding = c["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap();
        bounding.push("CAP_NOT_YET_INVENTED".into());
        bounding.push("cap_sys_admin".into());
    });
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("unknown capability names", &outs);
    for out in &outs {
        assert!(
            out.stderr.contains("level=warning")
                && out.stderr.contains(
                    "ignoring unknown or unavailable capabilities: [CAP_NOT_YET_INVENTED cap_sys_admin]"
                ),
            "{out:?}"
        );
    }
    // With --log the warning goes to the log file only.
    for rt in BOTH {
        let log = env.dir.join(format!("{}.log", rt.name()));
        let id = env.id(rt.name());
        let out = env.rt(
            rt,
            &[
                "--log",
                log.to_str().unwrap(),
                "run",
                "-b",
                b.dir.to_str().unwrap(),
                &id,
            ],
        );
        assert_eq!(out.code, 0, "{rt:?}: {out:?}");
        assert!(!out.stderr.contains("ignoring unknown"), "{rt:?}: {out:?}");
        let text = fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("ignoring unknown or unavailable capabilities"),
            "{rt:?}: {text}"
        );
    }
}

#[test]
fn ambient_capabilities_outside_inheritable_are_skipped_not_fatal() {
    let env = Env::new();
    // runc spec (1.1.5) lists ambient capabilities that are not inheritable.
    let b = env.runc_spec_bundle(&["sh", "-c", "grep -E 'Cap(Amb|Eff)' /proc/self/status"]);
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("ambient outside inheritable", &outs);
    assert!(
        outs[1].stdout.contains("CapAmb:\t0000000000000000"),
        "{outs:?}"
    );
    // runc 1.5 warns for each ambient capability it cannot raise (1.1.5 is silent).
    assert!(
        outs[1]
            .stderr
            .contains("can't raise ambient capability CAP_KILL"),
        "{:?}",
        outs[1]
    );
}

#[test]
fn debug_lines_go_to_the_log_in_text_and_json() {
    let env = Env::new();
    let b = env.runc_spec_bundle(&["true"]);
    for rt in BOTH {
        for (format, marker) in [("text", "level=debug"), ("json", "\"level\":\"debug\"")] {
            let log = env.dir.join(format!("{}-{format}.log", rt.name()));
            let id = env.id(rt.name());
            let out = env.rt(
                rt,
                &[
                    "--debug",
                    "--log",
                    log.to_str().unwrap(),
                    "--log-format",
                    format,
                    "run",
                    "-b",
                    b.dir.to_str().unwrap(),
                    &id,
                ],
            );
            assert_eq!(out.code, 0, "{rt:?} {format}: {out:?}");
            let text = fs::read_to_string(&log).unwrap();
            assert!(text.contains(marker), "{rt:?} {format}: {text}");
        }
    }
}

#[test]
fn an_empty_namespace_path_means_a_new_namespace() {
    let env = Env::new();
    let mut b = env.runc_spec_bundle(&["hostname"]);
    b.config(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            ns["path"] = "".into();
        }
    });
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("namespace path \"\"", &outs);
    assert_eq!(outs[1].stdout, "runc\n");
}

#[test]
fn lifecycle_states_and_state_json_fields_match() {
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sleep", "100"]);
    let bundle = b.dir.to_str().unwrap();
    let [runc, paddock] = side_by_side(|rt| {
        let id = env.id(rt.name());
        let mut seen = Vec::new();
        let mut step = |args: &[&str]| {
            let out = env.rt(rt, args);
            let state: Option<Value> = if args[0] == "state" {
                serde_json::from_str(&out.stdout).ok()
            } else {
                None
            };
            seen.push((args[0].to_string(), out.code));
            state
        };
        step(&["create", "-b", bundle, &id]);
        let created = step(&["state", &id]).unwrap();
        step(&["start", &id]);
        let running = step(&["state", &id]).unwrap();
        step(&["start", &id]);
        step(&["delete", &id]);
        step(&["kill", &id, "KILL"]);
        assert!(wait_for(|| env
            .rt(rt, &["state", &id])
            .stdout
            .contains("stopped")));
        let stopped = step(&["state", &id]).unwrap();
        step(&["kill", &id, "KILL"]);
        step(&["delete", &id]);
        step(&["state", &id]);
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let statuses = [&created, &running, &stopped].map(|s| s["status"].clone());
        (seen, statuses, keys(&created), created["bundle"].clone())
    });
    assert_eq!(runc.0, paddock.0, "exit codes per step");
    assert_eq!(runc.1, paddock.1, "statuses");
    assert_eq!(runc.3, paddock.3, "bundle");
    for k in &runc.2 {
        assert!(
            paddock.2.contains(k),
            "state field {k}: runc {:?} paddock {:?}",
            runc.2,
            paddock.2
        );
    }
}

#[test]
fn a_created_container_is_deleted_without_force() {
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sleep", "100"]);
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        env.rt(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
        let out = env.rt(rt, &["delete", &id]);
        assert_eq!(env.rt(rt, &["state", &id]).code, 1, "{rt:?}");
        out
    });
    assert_same("delete of a created container", &outs);
    env.assert_clean();
}

#[test]
fn commands_on_a_missing_container() {
    let env = Env::new();
    for args in [
        &["state", "nope"][..],
        &["start", "nope"],
        &["kill", "nope", "KILL"],
        &["delete", "nope"],
        &["delete", "--force", "nope"],
        &["pause", "nope"],
        &["resume", "nope"],
        &["ps", "nope"],
        &["events", "--stats", "nope"],
        &["update", "--memory", "64m", "nope"],
    ] {
        let outs = side_by_side(|rt| env.rt(rt, args));
        assert_same(&args.join(" "), &outs);
    }
}

#[test]
fn usage_errors_exit_as_runc() {
    let env = Env::new();
    for args in [
        &["no-such-command"][..],
        &["state"],
        &["create"],
        &["start", "a", "b"],
        &["kill"],
        &["delete"],
        &["ps"],
        &["events"],
        &["list", "extra"],
        &["spec", "extra"],
        &["--log-format", "xml", "state", "x"],
    ] {
        let outs = side_by_side(|rt| env.rt(rt, args));
        // runc also prints its usage text on stdout; paddock prints one line on stderr.
        assert_same_code(&args.join(" "), &outs);
    }
}

#[test]
fn list_formats() {
    let env = Env::new();
    for rt in BOTH {
        fs::create_dir_all(env.rt_root(rt)).unwrap();
    }
    let outs = side_by_side(|rt| env.rt(rt, &["list", "--format", "json"]));
    assert_same("empty list as JSON", &outs);
    let outs = side_by_side(|rt| env.rt(rt, &["list"]));
    assert_same("empty list table", &outs);
    let outs = side_by_side(|rt| env.rt(rt, &["list", "-q"]));
    assert_same("empty list -q", &outs);

    let b = env.runc_spec_bundle(&["sleep", "100"]);
    let ids = side_by_side(|rt| {
        let id = env.id(rt.name());
        env.rt(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
        id
    });
    for (rt, id) in BOTH.iter().zip(&ids) {
        let q = env.rt(*rt, &["list", "-q"]);
        assert_eq!(q.stdout, format!("{id}\n"), "{rt:?}");
        let table = env.rt(*rt, &["list"]);
        let line = table.stdout.lines().nth(1).unwrap().to_string();
        assert!(line.starts_with(&format!("{id}   ")), "{rt:?}: {table:?}");
        assert!(line.contains("   created   "), "{rt:?}: {table:?}");
        let json: Value =
            serde_json::from_str(&env.rt(*rt, &["list", "-f", "json"]).stdout).unwrap();
        assert_eq!(json[0]["id"], id.as_str(), "{rt:?}");
        assert_eq!(json[0]["status"], "created", "{rt:?}");
        env.rt(*rt, &["delete", "--force", id]);
    }
}

#[test]
fn list_with_a_missing_root_fails() {
    // runc 1.5 reports a missing --root given by the caller (1.1.5 lists nothing).
    let env = Env::new();
    let missing = env.dir.join("no-such-root");
    let out = env.output({
        let mut c = std::process::Command::new(Rt::Paddock.bin());
        c.arg("--root").arg(&missing).arg("list");
        c
    });
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no such file or directory"), "{out:?}");
}

#[test]
fn spec_writes_runc_1_5s_default_and_refuses_to_overwrite() {
    let env = Env::new();
    let dirs = side_by_side(|rt| {
        let dir = env.mkdir(rt.name());
        let out = env.rt(rt, &["spec", "-b", dir.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{rt:?}: {out:?}");
        let again = env.rt(rt, &["spec", "-b", dir.to_str().unwrap()]);
        assert_eq!(again.code, 1, "{rt:?}: {again:?}");
        let rootless = env.mkdir(rt.name());
        let out = env.rt(
            rt,
            &["spec", "--rootless", "-b", rootless.to_str().unwrap()],
        );
        assert_eq!(out.code, 0, "{rt:?}: {out:?}");
        (dir, rootless)
    });
    let load = |d: &std::path::Path| -> Value {
        serde_json::from_slice(&fs::read(d.join("config.json")).unwrap()).unwrap()
    };
    type Dirs = (std::path::PathBuf, std::path::PathBuf);
    let picks: [fn(&Dirs) -> std::path::PathBuf; 2] = [|d| d.0.clone(), |d| d.1.clone()];
    for pick in picks {
        let (mut runc, mut paddock) = (load(&pick(&dirs[0])), load(&pick(&dirs[1])));
        // Documented differences: the hostname, one more masked path, the spec version;
        // runc 1.5 no longer writes ambient capabilities (1.1.5 does).
        for v in [&mut runc, &mut paddock] {
            let o = v.as_object_mut().unwrap();
            o.remove("hostname");
            o.remove("ociVersion");
            v["process"]["capabilities"]
                .as_object_mut()
                .unwrap()
                .remove("ambient");
            v["process"]["capabilities"]
                .as_object_mut()
                .unwrap()
                .remove("inheritable");
            let masked = v["linux"]["maskedPaths"].as_array_mut().unwrap();
            masked.retain(|p| p != "/sys/devices/virtual/powercap");
            masked.sort_by_key(|p| p.to_string());
        }
        assert_eq!(runc, paddock);
    }
}

#[test]
fn run_detach_keep_and_pid_file() {
    let env = Env::new();
    let b = env.runc_spec_bundle(&["sleep", "100"]);
    let bundle = b.dir.to_str().unwrap();
    for rt in BOTH {
        let id = env.id(rt.name());
        let pid_file = env.dir.join(format!("{}.pid", rt.name()));
        let out = env.rt(
            rt,
            &[
                "run",
                "-d",
                "--pid-file",
                pid_file.to_str().unwrap(),
                "-b",
                bundle,
                &id,
            ],
        );
        assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{rt:?}: {out:?}");
        let pid = fs::read_to_string(&pid_file).unwrap();
        assert!(pid.chars().all(|c| c.is_ascii_digit()), "{rt:?}: {pid:?}");
        assert!(
            env.rt(rt, &["state", &id]).stdout.contains("running"),
            "{rt:?}"
        );
        env.rt(rt, &["delete", "--force", &id]);
    }
    let mut b = env.runc_spec_bundle(&["true"]);
    b.args(&["sh", "-c", "exit 3"]);
    for rt in BOTH {
        let id = env.id(rt.name());
        let out = env.rt(rt, &["run", "--keep", "-b", b.dir.to_str().unwrap(), &id]);
        assert_eq!(out.code, 3, "{rt:?}: {out:?}");
        assert!(
            env.rt(rt, &["state", &id]).stdout.contains("stopped"),
            "{rt:?}"
        );
        assert_eq!(env.rt(rt, &["delete", &id]).code, 0, "{rt:?}");
    }
}

#[test]
fn run_is_a_subreaper_unless_told_not_to_be() {
    let env = Env::new();
    // No pid namespace: an orphan is adopted by the nearest subreaper.
    let mut b = env.runc_spec_bundle(&[
        "sh",
        "-c",
        "p=$(sh -c 'sleep 30 >/dev/null 2>&1 & echo $!'); sleep 0.3; \
         pp=$(awk '/^PPid/{print $2}' /proc/$p/status); kill $p; \
         [ \"$pp\" = \"$PPID\" ] && echo adopted || echo not-adopted",
    ]);
    b.config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid")
    });
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("run as subreaper", &outs);
    assert_eq!(outs[1].stdout, "adopted\n");
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        env.rt(
            rt,
            &["run", "--no-subreaper", "-b", b.dir.to_str().unwrap(), &id],
        )
    });
    assert_same("run --no-subreaper", &outs);
    assert_eq!(outs[1].stdout, "not-adopted\n");
}

#[test]
fn rootless_flag_values() {
    let env = Env::new();
    for rt in BOTH {
        fs::create_dir_all(env.rt_root(rt)).unwrap();
    }
    for v in ["true", "false", "auto"] {
        let outs = side_by_side(|rt| env.rt(rt, &["--rootless", v, "list", "-q"]));
        assert_same(&format!("--rootless {v}"), &outs);
    }
    let out = env.paddock(&["--rootless", "maybe", "list"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--rootless: invalid value"), "{out:?}");
}
