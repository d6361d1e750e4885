//! OCI lifecycle hooks: validation of the `hooks` object and running one list of hooks.
//!
//! A hook gets exactly its configured argv and environment and the container state JSON on
//! stdin. As in runc, its stdout and stderr are collected and reported only when it fails,
//! in runc's words: `error running <kind> hook #<n>: exit status 3, stdout: …, stderr: …`.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use oci_spec::runtime::{Hook, Hooks};

/// How often a running hook is checked for exit (and its stdin for room).
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Checks every hook list: paths absolute, timeouts positive, env entries `KEY=VALUE`.
pub fn validate(hooks: &Hooks) -> Result<()> {
    for (kind, list) in hook_lists(hooks) {
        for (index, hook) in list.iter().enumerate() {
            validate_hook(&format!("hooks.{kind}[{index}]"), hook)?;
        }
    }
    Ok(())
}

/// Runs `hooks` in order, stopping at the first failure. `kind` names the list in errors.
pub fn run_hooks(kind: &str, hooks: &[Hook], state_json: &str) -> Result<()> {
    for (index, hook) in hooks.iter().enumerate() {
        run_hook(hook, state_json)
            .map_err(|e| anyhow!("error running {kind} hook #{index}: {e:#}"))?;
    }
    Ok(())
}

/// The hook lists this runtime runs, in lifecycle order: the `hooks` of `paddock features`.
pub fn known_names() -> Vec<&'static str> {
    hook_lists(&Hooks::default())
        .iter()
        .map(|(kind, _)| *kind)
        .collect()
}

#[allow(deprecated)] // prestart is deprecated in the spec but still honoured
fn hook_lists(hooks: &Hooks) -> [(&'static str, &[Hook]); 6] {
    fn list(hooks: &Option<Vec<Hook>>) -> &[Hook] {
        hooks.as_deref().unwrap_or(&[])
    }
    [
        ("prestart", list(hooks.prestart())),
        ("createRuntime", list(hooks.create_runtime())),
        ("createContainer", list(hooks.create_container())),
        ("startContainer", list(hooks.start_container())),
        ("poststart", list(hooks.poststart())),
        ("poststop", list(hooks.poststop())),
    ]
}

/// `field` is the hook's place in config.json, e.g. `hooks.poststop[2]`.
fn validate_hook(field: &str, hook: &Hook) -> Result<()> {
    if !hook.path().is_absolute() {
        bail!("{field}.path: must be absolute (got {:?})", hook.path());
    }
    if let Some(timeout) = hook.timeout() {
        if timeout <= 0 {
            bail!("{field}.timeout: must be greater than zero (got {timeout})");
        }
    }
    for (index, entry) in hook.env().as_deref().unwrap_or(&[]).iter().enumerate() {
        if split_env(entry).is_none() {
            bail!("{field}.env[{index}]: {entry:?} is not of the form KEY=VALUE");
        }
    }
    Ok(())
}

/// Splits `KEY=VALUE`; the key must be non-empty so the entry can be passed to Command.
fn split_env(entry: &str) -> Option<(&str, &str)> {
    entry.split_once('=').filter(|(key, _)| !key.is_empty())
}

/// Output a hook may leave for its error message; more is read and dropped.
const OUTPUT_LIMIT: usize = 1 << 20;

fn run_hook(hook: &Hook, state_json: &str) -> Result<()> {
    let path = hook.path();
    let mut command = build_command(hook)?;
    let mut child = command
        .spawn()
        .map_err(|e| anyhow!("fork/exec {}: {}", path.display(), os_error_text(&e)))?;
    // A timeout too large to represent is as good as none.
    let deadline = hook
        .timeout()
        .and_then(|secs| Instant::now().checked_add(Duration::from_secs(secs.unsigned_abs())));
    let mut output = Output::default();
    let outcome = supervise(&mut child, state_json.as_bytes(), deadline, &mut output);
    if outcome.is_err() {
        // Do not leave the hook running behind an error.
        let _ = child.kill();
        let _ = child.wait();
    }
    match outcome? {
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!(
            "{}, stdout: {}, stderr: {}",
            describe_failure(status),
            one_line(&output.stdout),
            one_line(&output.stderr)
        ),
        None => bail!(
            "hook ran past specified timeout of {:.1}s",
            hook.timeout().unwrap_or_default() as f64
        ),
    }
}

/// A hook's output inside a one-line error, line breaks escaped as runc's log shows them.
fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

/// Go's wording for an errno, which runc's hook errors carry: strerror, lower-cased first.
fn os_error_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let text = nix::errno::Errno::from_raw(code).desc();
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
        None => err.to_string(),
    }
}

fn build_command(hook: &Hook) -> Result<Command> {
    let path = hook.path();
    let mut command = Command::new(path);
    match hook.args().as_deref() {
        Some([argv0, rest @ ..]) => {
            command.arg0(argv0).args(rest);
        }
        // No args (or an empty list): argv is just the path, as execv callers expect.
        _ => {
            command.arg0(path);
        }
    }
    command.env_clear();
    for entry in hook.env().as_deref().unwrap_or(&[]) {
        let (key, value) = split_env(entry)
            .with_context(|| format!("env entry {entry:?} is not of the form KEY=VALUE"))?;
        command.env(key, value);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Only stdio reaches a hook: fds a careless caller left open (and ours, in init
    // before its own cleanup) must not reach a program that runs in the container's
    // namespaces or with the runtime's privileges.
    // SAFETY: the closure only makes a raw syscall, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            if libc::syscall(
                libc::SYS_close_range,
                3,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

/// What a hook wrote, kept for the error message.
#[derive(Default)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Feeds `input` to the child's stdin, collects its stdout and stderr, and waits for it
/// to exit. Returns `None` (after killing and reaping the child) when `deadline` passes
/// first. All pipes are non-blocking so a hook that never reads its stdin still times out;
/// once the hook has exited, what is left in its pipes is read without waiting for EOF
/// (a process it left behind may hold them open).
fn supervise(
    child: &mut Child,
    input: &[u8],
    deadline: Option<Instant>,
    output: &mut Output,
) -> Result<Option<ExitStatus>> {
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    if let Some(pipe) = &stdin {
        set_nonblocking(pipe)?;
    }
    for pipe in [
        stdout.as_ref().map(AsFd::as_fd),
        stderr.as_ref().map(AsFd::as_fd),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(&pipe)?;
    }
    let mut written = 0;
    loop {
        if let Some(pipe) = stdin.as_mut() {
            match feed(pipe, &input[written..]) {
                Ok(Some(n)) => written += n,
                Ok(None) => {}
                Err(err) => return Err(err).context("write state to stdin"),
            }
            if written >= input.len() {
                stdin = None; // close it so the hook sees EOF
            }
        }
        collect(&mut stdout, &mut output.stdout);
        collect(&mut stderr, &mut output.stderr);
        if let Some(status) = child.try_wait().context("wait")? {
            collect(&mut stdout, &mut output.stdout);
            collect(&mut stderr, &mut output.stderr);
            return Ok(Some(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // SIGKILL, then reap so no zombie is left behind.
            let _ = child.kill();
            child.wait().context("reap after timeout")?;
            return Ok(None);
        }
        sleep(POLL_INTERVAL);
    }
}

/// Reads what is in `pipe` now, keeping up to OUTPUT_LIMIT bytes; closes it at EOF.
fn collect(pipe: &mut Option<impl Read>, into: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    while let Some(p) = pipe.as_mut() {
        match p.read(&mut buf) {
            Ok(0) => *pipe = None,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(into.len());
                into.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock: nothing more for now; any other error: give up on this pipe.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => *pipe = None,
        }
    }
}

/// Writes what fits into the pipe. `Ok(None)` means "try again later"; a reader that went
/// away (EPIPE) counts as everything written, since hooks need not read their stdin.
fn feed(pipe: &mut ChildStdin, data: &[u8]) -> Result<Option<usize>> {
    if data.is_empty() {
        return Ok(Some(0));
    }
    match pipe.write(data) {
        Ok(n) => Ok(Some(n)),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(Some(data.len())),
        Err(err) => Err(err.into()),
    }
}

fn set_nonblocking(pipe: &impl AsRawFd) -> Result<()> {
    let flags = fcntl(pipe.as_raw_fd(), FcntlArg::F_GETFL).context("get hook pipe flags")?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(pipe.as_raw_fd(), FcntlArg::F_SETFL(flags)).context("set hook pipe non-blocking")?;
    Ok(())
}

/// How Go (and so runc) words a process's end: "exit status 3", "signal: killed".
fn describe_failure(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => {
            let core = if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            };
            format!("signal: {}{core}", signal_name(signal))
        }
        (None, None) => format!("{status}"),
    }
}

/// Go's names for the signals a hook is likely to die of.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "hangup",
        libc::SIGINT => "interrupt",
        libc::SIGQUIT => "quit",
        libc::SIGILL => "illegal instruction",
        libc::SIGTRAP => "trace/breakpoint trap",
        libc::SIGABRT => "aborted",
        libc::SIGBUS => "bus error",
        libc::SIGFPE => "floating point exception",
        libc::SIGKILL => "killed",
        libc::SIGUSR1 => "user defined signal 1",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGUSR2 => "user defined signal 2",
        libc::SIGPIPE => "broken pipe",
        libc::SIGALRM => "alarm clock",
        libc::SIGTERM => "terminated",
        libc::SIGXCPU => "CPU time limit exceeded",
        libc::SIGXFSZ => "file size limit exceeded",
        libc::SIGSYS => "bad system call",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{HookBuilder, HooksBuilder};

    fn shell_hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut builder = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".to_string(), "-c".to_string(), script.to_string()])
            .env(vec!["FOO=bar=baz".to_string()]);
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        builder.build().unwrap()
    }

    fn temp_file(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("paddock-hooks-{}-{name}", std::process::id()))
    }

    #[test]
    fn validate_names_the_field() {
        let bad_path = HookBuilder::default().path("bin/true").build().unwrap();
        let hooks = HooksBuilder::default()
            .poststop(vec![shell_hook("true", None), bad_path])
            .build()
            .unwrap();
        let err = validate(&hooks).unwrap_err().to_string();
        assert!(
            err.starts_with("hooks.poststop[1].path: must be absolute"),
            "{err}"
        );

        let hooks = HooksBuilder::default()
            .create_runtime(vec![shell_hook("true", Some(0))])
            .build()
            .unwrap();
        let err = validate(&hooks).unwrap_err().to_string();
        assert!(
            err.starts_with("hooks.createRuntime[0].timeout: must be greater than zero"),
            "{err}"
        );

        let no_equals = HookBuilder::default()
            .path("/bin/true")
            .env(vec!["NOEQUALS".to_string()])
            .build()
            .unwrap();
        let hooks = HooksBuilder::default()
            .start_container(vec![no_equals])
            .build()
            .unwrap();
        let err = validate(&hooks).unwrap_err().to_string();
        assert!(err.starts_with("hooks.startContainer[0].env[0]:"), "{err}");

        let hooks = HooksBuilder::default()
            .poststart(vec![shell_hook("true", Some(5))])
            .build()
            .unwrap();
        validate(&hooks).unwrap();
    }

    #[test]
    fn hook_gets_state_argv_and_exact_env() {
        let out = temp_file("env");
        let script = format!(
            "read -r state; printf '%s|%s|%s\\n' \"$state\" \"$0\" \"$(env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^_=' | sort | tr '\\n' ' ')\" > {}",
            out.display()
        );
        run_hooks(
            "prestart",
            &[shell_hook(&script, Some(10))],
            "{\"id\":\"x\"}\n",
        )
        .unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        assert_eq!(got, "{\"id\":\"x\"}|sh|FOO=bar=baz \n");
    }

    #[test]
    fn hook_without_args_gets_path_as_argv0() {
        let hook = HookBuilder::default().path("/bin/true").build().unwrap();
        run_hooks("poststop", &[hook], "{}").unwrap();
    }

    #[test]
    fn failing_hook_reports_status_and_stops_the_list() {
        let marker = temp_file("never");
        let hooks = [
            shell_hook("exit 3", None),
            shell_hook(&format!("touch {}", marker.display()), None),
        ];
        let err = run_hooks("createRuntime", &hooks, "{}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "error running createRuntime hook #0: exit status 3, stdout: , stderr: "
        );
        assert!(!marker.exists());

        let hooks = [
            shell_hook("true", None),
            shell_hook("echo out; echo err >&2; kill -TERM $$", None),
        ];
        let err = run_hooks("poststart", &hooks, "{}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "error running poststart hook #1: signal: terminated, stdout: out\\n, stderr: err\\n"
        );
    }

    #[test]
    fn hook_that_ignores_large_stdin_still_times_out() {
        // More than a pipe buffer of state, never read: the write must not block forever.
        let state = "x".repeat(1 << 20);
        let started = Instant::now();
        let err = run_hooks("prestart", &[shell_hook("sleep 30", Some(1))], &state)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "error running prestart hook #0: hook ran past specified timeout of 1.0s"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn hook_that_exits_without_reading_stdin_is_fine() {
        let state = "y".repeat(1 << 20);
        run_hooks("poststop", &[shell_hook("exit 0", None)], &state).unwrap();
    }

    #[test]
    fn missing_hook_binary_is_named() {
        let hook = HookBuilder::default()
            .path("/nonexistent/hook")
            .build()
            .unwrap();
        let err = run_hooks("poststop", &[hook], "{}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "error running poststop hook #0: fork/exec /nonexistent/hook: no such file or directory"
        );
    }
}
