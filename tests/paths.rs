//! linux.maskedPaths, linux.readonlyPaths and linux.sysctl.
mod common;

use std::fs;

use common::Env;
use serde_json::json;

#[test]
fn masked_file_reads_empty() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    fs::write(b.rootfs.join("etc/secret"), "top secret").unwrap();
    b.push(|c| &mut c["linux"]["maskedPaths"], json!("/etc/secret"));
    let out = env.run_sh(&mut b, "cat /etc/secret; echo end");
    assert_eq!(out.stdout, "end\n");
}

#[test]
fn masked_dir_is_an_empty_tmpfs() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    fs::create_dir(b.rootfs.join("secretdir")).unwrap();
    fs::write(b.rootfs.join("secretdir/key"), "k").unwrap();
    b.push(|c| &mut c["linux"]["maskedPaths"], json!("/secretdir"));
    let out = env.run_sh(
        &mut b,
        "ls -A /secretdir | wc -l; grep ' /secretdir ' /proc/self/mountinfo",
    );
    let (count, line) = out.stdout.split_once('\n').unwrap();
    assert_eq!(count.trim(), "0", "{out:?}");
    assert!(line.contains(" - tmpfs "), "{out:?}");
    assert_eq!(
        fs::read_to_string(b.rootfs.join("secretdir/key")).unwrap(),
        "k"
    );
}

#[test]
fn default_masked_proc_paths_are_masked() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(
        &mut b,
        "wc -c < /proc/kcore; ls -A /proc/acpi 2>/dev/null | wc -l",
    );
    for l in out.stdout.lines() {
        assert_eq!(l.trim(), "0", "{out:?}");
    }
}

#[test]
fn readonly_path_refuses_writes() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    fs::create_dir(b.rootfs.join("rodir")).unwrap();
    fs::write(b.rootfs.join("rodir/f"), "keep").unwrap();
    b.push(|c| &mut c["linux"]["readonlyPaths"], json!("/rodir"));
    let out = env.run_sh(&mut b, "cat /rodir/f; echo x > /rodir/f 2>/dev/null && echo WROTE; touch /rodir/n 2>/dev/null && echo MADE; echo");
    assert_eq!(out.stdout, "keep\n");
    assert_eq!(
        fs::read_to_string(b.rootfs.join("rodir/f")).unwrap(),
        "keep"
    );
    assert!(!b.rootfs.join("rodir/n").exists());
}

#[test]
fn default_readonly_proc_sys_refuses_writes() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(
        &mut b,
        "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo WROTE; echo done",
    );
    assert_eq!(out.stdout, "done\n");
}

#[test]
fn sysctl_in_net_namespace_is_applied() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    let host = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let out = env.run_args(&mut b, &["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(out.stdout, "1\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host
    );
}

#[test]
fn host_wide_sysctl_is_rejected_at_create() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config(|c| c["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/bin/evil"}));
    let before = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let id = env.id("sysctl");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("kernel.core_pattern"), "{out:?}");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
    env.assert_clean();
}

#[test]
fn net_sysctl_without_net_namespace_is_rejected() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.remove_namespace("network");
    b.config(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    let host = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let id = env.id("sysctlnet");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("net.ipv4.ip_forward"), "{out:?}");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host
    );
    env.assert_clean();
}
