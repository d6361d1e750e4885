//! Side-by-side runs for the parity suite: the same bundle and command through
//! Debian's runc (installed by `make test`) and through paddock, each with its own
//! private --root, so a case can compare what a caller sees from both.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{bin, Bundle, Env, Out};

/// A runtime under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    Runc,
    Paddock,
}

/// runc first: it is the reference a case's expectation is read from.
pub const BOTH: [Rt; 2] = [Rt::Runc, Rt::Paddock];

impl Rt {
    pub fn bin(self) -> PathBuf {
        match self {
            Rt::Runc => {
                PathBuf::from(std::env::var_os("RUNC_BIN").unwrap_or_else(|| "runc".into()))
            }
            Rt::Paddock => bin(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rt::Runc => "runc",
            Rt::Paddock => "paddock",
        }
    }
}

impl Env {
    /// The private --root of `rt` for this test.
    pub fn rt_root(&self, rt: Rt) -> PathBuf {
        match rt {
            Rt::Paddock => self.root.clone(),
            Rt::Runc => self.dir.join("runc-state"),
        }
    }

    /// A command for `rt` with this test's --root for it; stdin is /dev/null.
    pub fn rt_cmd(&self, rt: Rt, args: &[&str]) -> Command {
        let mut c = Command::new(rt.bin());
        c.arg("--root").arg(self.rt_root(rt)).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `rt` with this test's --root for it.
    pub fn rt(&self, rt: Rt, args: &[&str]) -> Out {
        self.output(self.rt_cmd(rt, args))
    }

    /// Runs `rt args`, killed after 30 s: a hang is a failure, never a stuck suite.
    pub fn rt_bounded(&self, rt: Rt, args: &[&str]) -> Out {
        let dir = self.mkdir("bounded");
        let (o, e) = (dir.join("out"), dir.join("err"));
        let mut cmd = self.rt_cmd(rt, args);
        cmd.stdout(fs::File::create(&o).unwrap());
        cmd.stderr(fs::File::create(&e).unwrap());
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} {args:?} hung", rt.name());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Out {
            code: super::code_of(status),
            stdout: fs::read_to_string(o).unwrap_or_default(),
            stderr: fs::read_to_string(e).unwrap_or_default(),
        }
    }

    /// `RT run -b B ID` in the foreground, with a fresh ID per runtime.
    pub fn rt_run(&self, rt: Rt, b: &Bundle) -> Out {
        let id = self.id(rt.name());
        self.rt(rt, &["run", "-b", b.dir.to_str().unwrap(), &id])
    }

    /// A bundle whose config.json is exactly what `runc spec` writes, with `args`
    /// as the process and no terminal (the only two edits).
    pub fn runc_spec_bundle(&self, args: &[&str]) -> Bundle {
        let dir = self.mkdir("runc-spec-bundle");
        let out = Command::new(Rt::Runc.bin())
            .arg("spec")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "runc spec: {out:?}");
        let cfg = serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        Bundle::with_config(dir, cfg, args)
    }
}

/// Runs `f` once per runtime, runc first.
pub fn side_by_side<T>(f: impl Fn(Rt) -> T) -> [T; 2] {
    [f(Rt::Runc), f(Rt::Paddock)]
}

/// Asserts that paddock's exit code and stdout are runc's.
#[track_caller]
pub fn assert_same(case: &str, [runc, paddock]: &[Out; 2]) {
    assert_eq!(
        (runc.code, &runc.stdout),
        (paddock.code, &paddock.stdout),
        "{case}: runc {runc:?} paddock {paddock:?}"
    );
}

/// Asserts that both runtimes exit with the same code (stdout may differ, e.g. IDs).
#[track_caller]
pub fn assert_same_code(case: &str, [runc, paddock]: &[Out; 2]) {
    assert_eq!(
        runc.code, paddock.code,
        "{case}: runc {runc:?} paddock {paddock:?}"
    );
}
