//! Shared helpers for the integration tests: busybox bundles in private temp dirs,
//! a runner with a private `--root`, and host hygiene checks when a test ends.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod parity;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// The runtime under test: $PADDOCK_BIN, else the binary cargo built.
pub fn bin() -> PathBuf {
    std::env::var_os("PADDOCK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_paddock")))
}

/// Result of one command: exit code (-N when killed by signal N), stdout, stderr.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    /// Panics with the whole output unless the command exited 0.
    #[track_caller]
    pub fn success(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self
    }
    /// Asserts the runc error contract: exit 1 and exactly one stderr line.
    #[track_caller]
    pub fn fails_with_one_line(self) -> Out {
        assert_eq!(self.code, 1, "expected exit 1: {self:?}");
        assert_eq!(
            self.stderr.trim_end_matches('\n').lines().count(),
            1,
            "expected one stderr line: {self:?}"
        );
        assert!(
            self.stderr.ends_with('\n'),
            "stderr line unterminated: {self:?}"
        );
        self
    }
}

pub fn code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// Applets of the host's busybox, listed once per test binary.
fn applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    })
}

/// Writes a busybox rootfs at `rootfs`.
pub fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "run"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in applets() {
        let p = rootfs.join("bin").join(a);
        if a != "busybox" && !p.exists() {
            symlink("busybox", p).unwrap();
        }
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\nu1000:x:1000:1000:u1000:/tmp:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nnobody:x:65534:\ng1000:x:1000:\ng2000:x:2000:\n",
    )
    .unwrap();
}

/// An OCI bundle: a busybox rootfs and a config.json edited as JSON (saved on every edit).
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    cfg: Value,
}

impl Bundle {
    fn new(dir: PathBuf, args: &[&str]) -> Bundle {
        let out = Command::new(bin())
            .args(["spec", "--bundle"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "paddock spec: {out:?}");
        let cfg: Value =
            serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        Bundle::with_config(dir, cfg, args)
    }

    /// A bundle in `dir` (rootfs made here) from a generated config, with `args` as the
    /// process and no terminal: the only edits every test makes.
    pub fn with_config(dir: PathBuf, cfg: Value, args: &[&str]) -> Bundle {
        let rootfs = dir.join("rootfs");
        if !rootfs.join("bin/busybox").exists() {
            make_rootfs(&rootfs);
        }
        let mut b = Bundle { dir, rootfs, cfg };
        b.config(|c| c["process"]["terminal"] = false.into());
        b.args(args);
        b
    }

    /// Sets process.args.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config(|c| c["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect())
    }

    /// Edits config.json.
    pub fn config(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.cfg);
        self.save();
        self
    }

    pub fn cfg(&self) -> &Value {
        &self.cfg
    }

    /// Appends to a JSON array field, making it if absent.
    pub fn push(&mut self, f: impl FnOnce(&mut Value) -> &mut Value, item: Value) -> &mut Self {
        self.config(|c| {
            let v = f(c);
            if !v.is_array() {
                *v = Value::Array(vec![]);
            }
            v.as_array_mut().unwrap().push(item);
        })
    }

    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.push(|c| &mut c["mounts"], m)
    }

    /// Removes the namespace of this type from linux.namespaces.
    pub fn remove_namespace(&mut self, ty: &str) -> &mut Self {
        self.config(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != ty)
        })
    }

    /// Adds (or replaces) a namespace entry.
    pub fn set_namespace(&mut self, ns: Value) -> &mut Self {
        let ty = ns["type"].as_str().unwrap().to_string();
        self.remove_namespace(&ty);
        self.push(|c| &mut c["linux"]["namespaces"], ns)
    }

    pub fn save(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.cfg).unwrap(),
        )
        .unwrap();
    }
}

/// One test's world: a temp dir, a private --root, unique IDs, and hygiene checks on drop.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    ids: Mutex<Vec<String>>,
    mounts_before: BTreeSet<String>,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = PathBuf::from(format!(
            "/tmp/paddock-test-{}-{}",
            std::process::id(),
            next()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let root = dir.join("state");
        let mut env = Env {
            dir,
            root,
            ids: Mutex::new(Vec::new()),
            mounts_before: BTreeSet::new(),
        };
        env.mounts_before = env.our_mounts();
        env
    }

    /// A new bundle under the temp dir running `args`.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        let dir = self.dir.join(format!("bundle{}", next()));
        fs::create_dir_all(&dir).unwrap();
        Bundle::new(dir, args)
    }

    /// A unique container ID, remembered for the hygiene checks.
    pub fn id(&self, name: &str) -> String {
        let id = format!("{name}-{}-{}-t", std::process::id(), next());
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// A fresh directory under the temp dir.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(format!("{name}{}", next()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A command for paddock with this test's --root; stdio not yet set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs paddock with --root. Output goes through files, not pipes, so a container
    /// that inherits them never keeps us waiting for EOF.
    pub fn paddock(&self, args: &[&str]) -> Out {
        self.output(self.cmd(args))
    }

    /// Runs any command with stdout/stderr captured through files.
    pub fn output(&self, mut cmd: Command) -> Out {
        let n = next();
        let (o, e) = (
            self.dir.join(format!(".out{n}")),
            self.dir.join(format!(".err{n}")),
        );
        cmd.stdout(fs::File::create(&o).unwrap());
        cmd.stderr(fs::File::create(&e).unwrap());
        let status = cmd.status().unwrap();
        let out = Out {
            code: code_of(status),
            stdout: fs::read_to_string(&o).unwrap_or_default(),
            stderr: fs::read_to_string(&e).unwrap_or_default(),
        };
        let _ = fs::remove_file(o);
        let _ = fs::remove_file(e);
        out
    }

    /// Spawns paddock with --root and the given stdio left to the caller.
    pub fn spawn(&self, args: &[&str], f: impl FnOnce(&mut Command)) -> Child {
        let mut c = self.cmd(args);
        f(&mut c);
        c.spawn().unwrap()
    }

    /// `paddock run -b B ID`, foreground.
    pub fn run(&self, b: &Bundle, id: &str) -> Out {
        self.paddock(&["run", "-b", b.dir.to_str().unwrap(), id])
    }

    /// Runs a throwaway container with `args` and returns its output (asserting exit 0).
    #[track_caller]
    pub fn run_args(&self, b: &mut Bundle, args: &[&str]) -> Out {
        b.args(args);
        let id = self.id("r");
        self.run(b, &id).success()
    }

    /// `run_args` of `sh -c SCRIPT`.
    #[track_caller]
    pub fn run_sh(&self, b: &mut Bundle, script: &str) -> Out {
        self.run_args(b, &["sh", "-c", script])
    }

    pub fn create(&self, b: &Bundle, id: &str) -> Out {
        self.paddock(&["create", "-b", b.dir.to_str().unwrap(), id])
    }

    /// `paddock state ID` parsed; panics unless it succeeds.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.paddock(&["state", id]).success();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("state JSON: {e}: {out:?}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits (bounded) until the container reaches `status`.
    pub fn wait_status(&self, id: &str, status: &str) -> bool {
        wait_for(|| self.status(id) == status)
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }

    fn mentions_us(&self, s: &str) -> bool {
        s.contains(&self.dir_slash())
            || s.ends_with(self.dir.to_str().unwrap())
            || self.ids().iter().any(|id| s.contains(id.as_str()))
    }

    /// The temp dir with a trailing slash: /tmp/paddock-test-1-1 must not match -1-12.
    pub fn dir_slash(&self) -> String {
        format!("{}/", self.dir.display())
    }

    /// Mount points in our mount table that mention the temp dir or our IDs.
    fn our_mounts(&self) -> BTreeSet<String> {
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .filter(|m| self.mentions_us(m))
            .collect()
    }

    fn cgroup_leftovers(&self) -> Vec<PathBuf> {
        let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            bases.extend(rd.flatten().map(|e| e.path()));
        }
        // The runtime names a container's default cgroup `paddock/<id>` or, for a
        // private --root as in these tests, `paddock/<id>-<hash of the root>`.
        let ids = self.ids();
        let ours = |name: &str| {
            ids.iter().any(|id| {
                name == id
                    || name
                        .strip_prefix(id.as_str())
                        .is_some_and(|r| r.len() == 9 && r.starts_with('-'))
            })
        };
        let mut left = Vec::new();
        for b in bases {
            // runc (parity cases) puts a container without cgroupsPath at /<id>.
            left.extend(ids.iter().map(|id| b.join(id)).filter(|p| p.is_dir()));
            for e in fs::read_dir(b.join("paddock"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if ours(&e.file_name().to_string_lossy()) && e.path().is_dir() {
                    left.push(e.path());
                }
            }
        }
        left
    }

    /// Live processes whose cmdline mentions our temp dir or IDs, or in one of our cgroups.
    fn process_leftovers(&self) -> Vec<(i32, String)> {
        let me = std::process::id() as i32;
        let ids = self.ids();
        let mut left = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
            {
                continue;
            }
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let in_cg = ids.iter().any(|id| {
                cg.contains(&format!("/paddock/{id}\n"))
                    || cg.contains(&format!("/paddock/{id}-"))
                    || cg.contains(&format!(":/{id}\n"))
            });
            if self.mentions_us(&cmd) || in_cg {
                left.push((pid, cmd));
            }
        }
        left
    }

    fn state_leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = [&self.root, &self.dir.join("runc-state")]
            .into_iter()
            .filter_map(|r| fs::read_dir(r).ok())
            .flat_map(|rd| rd.flatten().map(|e| e.path().display().to_string()))
            .collect();
        for id in self.ids() {
            let p = Path::new("/run/paddock").join(&id);
            if p.exists() {
                left.push(p.display().to_string());
            }
        }
        left
    }

    /// Everything this test left on the host (empty when clean).
    pub fn leftovers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let new_mounts: Vec<_> = self
            .our_mounts()
            .difference(&self.mounts_before)
            .cloned()
            .collect();
        if !new_mounts.is_empty() {
            problems.push(format!("mounts left: {new_mounts:?}"));
        }
        let cg = self.cgroup_leftovers();
        if !cg.is_empty() {
            problems.push(format!("cgroups left: {cg:?}"));
        }
        let procs = self.process_leftovers();
        if !procs.is_empty() {
            problems.push(format!("processes left: {procs:?}"));
        }
        let st = self.state_leftovers();
        if !st.is_empty() {
            problems.push(format!("state left: {st:?}"));
        }
        problems
    }

    /// Asserts the host is clean now (allowing a moment for exiting processes).
    #[track_caller]
    pub fn assert_clean(&self) {
        let mut problems = self.leftovers();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !problems.is_empty() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
            problems = self.leftovers();
        }
        assert!(problems.is_empty(), "host not clean: {problems:#?}");
    }

    /// Best-effort removal of anything left, so one failing test does not spoil the host.
    fn cleanup(&self) {
        for id in self.ids() {
            for rt in parity::BOTH {
                if self.rt_root(rt).join(&id).exists() {
                    let _ = self.rt(rt, &["delete", "--force", &id]);
                }
            }
        }
        for (pid, _) in self.process_leftovers() {
            // SAFETY: SIGKILL to a process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        sleep(Duration::from_millis(100));
        for d in self.cgroup_leftovers() {
            rmdir_tree(&d);
        }
        let mut mounts: Vec<_> = self
            .our_mounts()
            .difference(&self.mounts_before)
            .cloned()
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: detaching a mount this test leaked under its own temp dir.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let mut problems = Vec::new();
        if !panicking {
            problems = self.leftovers();
            let deadline = Instant::now() + Duration::from_secs(3);
            while !problems.is_empty() && Instant::now() < deadline {
                sleep(Duration::from_millis(50));
                problems = self.leftovers();
            }
        }
        self.cleanup();
        // Never remove through a mount.
        let dir = self.dir_slash();
        let mounted = fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| {
                l.split_whitespace()
                    .nth(4)
                    .is_some_and(|m| format!("{m}/").starts_with(&dir))
            });
        if mounted {
            problems.push(format!("not removing {dir}: mounts remain under it"));
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
        if !panicking && !problems.is_empty() {
            panic!("host not clean after test: {problems:#?}");
        }
    }
}

/// Removes a cgroup directory and any child cgroups (rmdir only: cgroupfs files go with it).
fn rmdir_tree(d: &Path) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(d);
}

/// Polls `f` for up to 10 s (a bound for slow machines, not a timing assertion).
pub fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

/// A bind mount entry for config.json.
pub fn bind(src: &Path, dst: &str, extra: &[&str]) -> Value {
    let mut opts = vec!["bind"];
    opts.extend_from_slice(extra);
    serde_json::json!({
        "destination": dst, "type": "bind", "source": src.to_str().unwrap(), "options": opts
    })
}

/// Receives the pty master from a console socket: exactly one SCM_RIGHTS message
/// carrying exactly one fd (what go-runc and conmon insist on).
pub fn recv_one_fd(sock: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 8]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        match c {
            ControlMessageOwned::ScmRights(v) => fds.push(v),
            other => panic!("unexpected cmsg {other:?}"),
        }
    }
    assert_eq!(fds.len(), 1, "one SCM_RIGHTS message: {fds:?}");
    assert_eq!(fds[0].len(), 1, "one fd: {fds:?}");
    // SAFETY: the fd was just received and is owned by no one else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0][0]) }
}

/// Is a path printed inside the container (a readlink result) one of the container's
/// own? `top` are the names at the top of its rootfs; pipe:/socket:/anon_inode: count.
pub fn inside(line: &str, top: &[String]) -> bool {
    let line = line.trim_end_matches(" (deleted)");
    // The sealed exec tail a process of ours runs for a moment before its program.
    if line == "/memfd:paddock-init" {
        return true;
    }
    if let Some(rest) = line.strip_prefix('/') {
        let first = rest.split('/').next().unwrap_or("");
        return !line.contains("paddock")
            && !line.contains("/work")
            && (rest.is_empty() || top.iter().any(|t| t == first));
    }
    line.starts_with("anon_inode:")
        || line
            .split_once(":[")
            .is_some_and(|(k, v)| k.chars().all(|c| c.is_ascii_lowercase()) && v.ends_with(']'))
}

/// Reads a pty master (made non-blocking) until the text contains `marker`.
pub fn read_pty_until(master: std::os::fd::BorrowedFd<'_>, marker: &str) -> String {
    use std::os::fd::AsRawFd;
    // SAFETY: setting O_NONBLOCK on an fd the caller owns.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut text = Vec::new();
    wait_for(|| {
        let mut buf = [0u8; 1024];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            text.extend_from_slice(&buf[..n as usize]);
        }
        String::from_utf8_lossy(&text).contains(marker)
    });
    String::from_utf8_lossy(&text).into_owned()
}

/// A tmpfs the test mounts on the host (then remounted with `flags`, if any), holding
/// `file`; unmounted on drop.
pub struct HostTmpfs(pub PathBuf);

impl HostTmpfs {
    pub fn new(at: &Path, flags: nix::mount::MsFlags) -> HostTmpfs {
        fs::create_dir_all(at).unwrap();
        let none = nix::mount::MsFlags::empty();
        nix::mount::mount(Some("tmpfs"), at, Some("tmpfs"), none, Some("size=1m")).unwrap();
        fs::write(at.join("file"), "host\n").unwrap();
        if !flags.is_empty() {
            let remount = nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_BIND;
            nix::mount::mount(
                None::<&str>,
                at,
                None::<&str>,
                flags | remount,
                None::<&str>,
            )
            .unwrap();
        }
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: unmounting the tmpfs this test mounted.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Leaves `fds` open without close-on-exec in the command's process (on /dev/null), as a
/// careless caller does.
pub fn leak_fds(cmd: &mut Command, fds: &'static [i32]) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let null = fs::File::open("/dev/null").unwrap();
    // SAFETY: pre_exec runs in the forked child; dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for &target in fds {
                if libc::dup2(null.as_raw_fd(), target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
