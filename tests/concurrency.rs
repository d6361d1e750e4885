//! Many containers at once, and commands on different IDs never waiting on each other.
mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Bundle, Env};

fn lifecycle(env: &Env, b: &Bundle, id: &str) -> Result<(), String> {
    let step = |args: &[&str]| {
        let out = env.paddock(args);
        if out.ok() {
            Ok(out)
        } else {
            Err(format!("{args:?}: {out:?}"))
        }
    };
    step(&["create", "-b", b.dir.to_str().unwrap(), id])?;
    step(&["start", id])?;
    if !common::wait_for(|| env.status(id) == "stopped") {
        return Err(format!("{id} never stopped"));
    }
    step(&["delete", id])?;
    Ok(())
}

#[test]
fn fifty_containers_eight_at_a_time() {
    let env = Env::new();
    let bundles = [env.bundle(&["true"]), env.bundle(&["sleep", "0.1"])];
    let ids: Vec<String> = (0..50).map(|i| env.id(&format!("c{i}"))).collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= ids.len() {
                    break;
                }
                if let Err(e) = lifecycle(&env, &bundles[i % 2], &ids[i]) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
    env.assert_clean();
}

#[test]
fn fifty_foreground_runs_eight_at_a_time() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "exit 5"]);
    let ids: Vec<String> = (0..50).map(|i| env.id(&format!("r{i}"))).collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= ids.len() {
                    break;
                }
                let out = env.run(&b, &ids[i]);
                if out.code != 5 {
                    failures.lock().unwrap().push(out);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    env.assert_clean();
}

/// Runs paddock and waits for it, killing it if it is still blocked after a generous bound
/// (a deadlock detector, not a timing assertion).
fn finishes(env: &Env, args: &[&str]) -> bool {
    let mut child = env.spawn(args, |c| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_held_container_lock_does_not_block_other_ids() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let (held, other) = (env.id("held"), env.id("other"));
    env.create(&b, &held).success();
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(env.root.join(&held))
        .unwrap();
    // SAFETY: flock on a directory fd we own; released when `dir` is dropped.
    assert_eq!(unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) }, 0);
    let bdir = b.dir.to_str().unwrap();
    assert!(finishes(&env, &["create", "-b", bdir, &other]));
    assert!(finishes(&env, &["start", &other]));
    assert!(finishes(&env, &["state", &other]));
    assert!(finishes(&env, &["list"]));
    assert!(finishes(&env, &["kill", &other, "KILL"]));
    assert!(env.wait_status(&other, "stopped"));
    assert!(finishes(&env, &["delete", &other]));
    drop(dir);
    env.paddock(&["delete", "--force", &held]).success();
}

#[test]
fn concurrent_deletes_of_one_container_leave_nothing() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("race");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    let codes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let out = env.paddock(&["delete", "--force", &id]);
                codes.lock().unwrap().push(out);
            });
        }
    });
    // The lock serializes them: one deletes, the others find it gone, which for
    // --force is success (as in runc).
    let outs = codes.into_inner().unwrap();
    assert!(outs.iter().all(|o| o.ok()), "{outs:#?}");
    env.assert_clean();
}
