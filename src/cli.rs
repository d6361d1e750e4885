//! runc-compatible command line. Go's flag packages accept `-flag`, `--flag`,
//! `--flag=value` and `--flag value`; clap only knows the double-dash forms, so
//! `normalize_args` rewrites single-dash long flags before parsing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "paddock",
    about = "paddock: a low-level OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// root directory for storage of container state
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// write runtime log lines to this file
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// log format: text or json
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// use the systemd cgroup driver (remembered in the container's state)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// ignore cgroup permission errors: true, false or auto (the default: true for a
    /// user without privileges; before the command, as in runc; `spec --rootless` is
    /// the spec command's own flag)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// create a container
    Create(CreateArgs),
    /// start a created container
    Start(IdArg),
    /// create and start a container, then wait for it
    Run(RunArgs),
    /// output the state of a container
    State(IdArg),
    /// send a signal to the container's init process
    Kill(KillArgs),
    /// delete a container and everything the runtime made for it
    Delete(DeleteArgs),
    /// list containers
    #[command(alias = "ls")]
    List(ListArgs),
    /// write a default config.json
    Spec(SpecArgs),
    /// run a new process inside a running container
    Exec(ExecArgs),
    /// suspend every process in the container (cgroup freezer)
    Pause(IdArg),
    /// resume every process of a paused container
    Resume(IdArg),
    /// change the resource limits of a container
    Update(UpdateArgs),
    /// list the processes of a container
    Ps(PsArgs),
    /// print resource stats and OOM events of a container
    Events(EventsArgs),
    /// show the enabled features (the runtime-spec Features structure, as JSON)
    Features,
    /// checkpoint a running container (with CRIU)
    Checkpoint(CheckpointArgs),
    /// restore a container from a previous checkpoint (with CRIU)
    Restore(RestoreArgs),
    /// print a shell completion script for paddock
    Completion(CompletionArgs),
}

#[derive(Args, Debug)]
pub struct IdArg {
    /// the container ID
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// path to the bundle directory (default: current directory)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// file to write the container's init pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// unix socket that receives a pidfd of the container's init
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// pass N extra file descriptors (3 .. 3+N-1) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// use MS_MOVE and chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// the container ID
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// do not wait for the container; return once it is started
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// do not become a subreaper for the container's orphaned processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// send the signal to every process in the container
    #[arg(short = 'a', long)]
    pub all: bool,
    /// the container ID
    pub id: String,
    /// signal name or number (default SIGTERM)
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// kill the container first if it is still running
    #[arg(short = 'f', long)]
    pub force: bool,
    /// the container ID
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// output format: table or json
    #[arg(short = 'f', long, default_value = "table")]
    pub format: ListFormat,
    /// print only container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// JSON file with the process to run (an OCI `process` object)
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// unix socket that receives the pty master with --tty
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// unix socket that receives a pidfd of the new process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// set an environment variable (KEY=VALUE); repeatable
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// allocate a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// uid[:gid] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// additional gids; repeatable
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// return once the process has started
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// file to write the process's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// add a capability to the bounding, effective and permitted sets; repeatable
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// pass N extra file descriptors (3 .. 3+N-1) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// run in this sub-cgroup of the container ([controller[,controller]:]path; repeatable)
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// allow exec into a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// the container ID
    pub id: String,
    /// the command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// bundle directory to write config.json into
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// write a config for a rootless container
    #[arg(long)]
    pub rootless: bool,
    /// add a seccomp profile: "default" (Docker-compatible, built in) or a JSON file
    #[arg(long)]
    pub seccomp: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// JSON LinuxResources to apply, from a file or `-` for stdin
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// memory limit in bytes (suffixes k, m, g allowed; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// memory plus swap limit (-1 for unlimited)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// memory soft limit
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// kernel memory limit (deprecated)
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// kernel TCP buffer memory limit (deprecated)
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// CPU CFS quota in microseconds (-1 for unlimited)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPU CFS period in microseconds
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<String>,
    /// CPU realtime period in microseconds
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<String>,
    /// CPU realtime runtime in microseconds
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<String>,
    /// CPU CFS burst in microseconds (accumulated time beyond the quota)
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<String>,
    /// 1: SCHED_IDLE for the cgroup, 0: the default
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<String>,
    /// CPUs to run on (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// memory nodes to use (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// maximum number of pids (-1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// block IO weight, 10 to 1000
    #[arg(long = "blkio-weight", allow_hyphen_values = true)]
    pub blkio_weight: Option<String>,
    /// Intel RDT/CAT L3 cache schema
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// the container ID
    pub id: String,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// output format: table (host ps output) or json (pids)
    #[arg(short = 'f', long, default_value = "table")]
    pub format: ListFormat,
    /// the container ID
    pub id: String,
    /// options for ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// print the container's stats once and exit
    #[arg(long)]
    pub stats: bool,
    /// stats interval, a Go duration such as 5s or 500ms
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// the container ID
    pub id: String,
}

/// Options checkpoint and restore share (runc's criu options).
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// path to the criu image files (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// path for criu's work files and logs (default: the image path)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// allow open tcp connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// allow shell jobs (a terminal shared with the caller)
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore (default: soft)
    #[arg(long = "manage-cgroups-mode", default_value = "")]
    pub manage_cgroups_mode: String,
    /// create a namespace but do not restore its properties (only "network"); repeatable
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// enable auto deduplication of memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// use userfaultfd to restore memory pages lazily
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// path of the previous (pre-dump) images, relative to the image path
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// leave the container running after checkpointing
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// skip in-flight tcp connections
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// link unlinked files back when possible
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    /// dump the memory only and leave the container running (for a later dump)
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// ADDRESS:PORT of a criu page server
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// with --lazy-pages: fd criu writes a zero byte to once lazy pages are served
    #[arg(long = "status-fd", default_value_t = -1, allow_hyphen_values = true)]
    pub status_fd: i32,
    /// the container ID
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// path to the bundle directory (default: current directory)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// do not wait for the container; return once it is restored
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// file to write the restored init's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// do not become a subreaper for the container's orphaned processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// accepted as runc accepts it; CRIU sets up the restored root itself
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// LSM profile for the restored processes, TYPE:NAME
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    /// the container ID
    pub id: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// the shell to complete for
    pub shell: Shell,
}

/// Long flags callers may spell Go-style with a single dash (`-root`, `-log-format=json`).
const LONG_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "debug",
    "systemd-cgroup",
    "rootless",
    "version",
    "bundle",
    "pid-file",
    "console-socket",
    "preserve-fds",
    "no-pivot",
    "no-new-keyring",
    "detach",
    "keep",
    "all",
    "force",
    "format",
    "quiet",
    "help",
    "process",
    "cwd",
    "env",
    "tty",
    "user",
    "additional-gids",
    "process-label",
    "apparmor",
    "no-new-privs",
    "cap",
    "cgroup",
    "ignore-paused",
    "seccomp",
    "image-path",
    "work-path",
    "parent-path",
    "leave-running",
    "tcp-established",
    "tcp-skip-in-flight",
    "link-remap",
    "ext-unix-sk",
    "shell-job",
    "lazy-pages",
    "status-fd",
    "page-server",
    "file-locks",
    "pre-dump",
    "manage-cgroups-mode",
    "empty-ns",
    "auto-dedup",
    "no-subreaper",
    "lsm-profile",
    "lsm-mount-context",
];

/// Rewrites `-flag[=v]` to `--flag[=v]` for known long flags, up to the first `--`.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for arg in args {
        if arg == "--" {
            passthrough = true;
        }
        if !passthrough && is_single_dash_long_flag(&arg) {
            out.push(format!("-{arg}"));
        } else {
            out.push(arg);
        }
    }
    out
}

fn is_single_dash_long_flag(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else {
        return false;
    };
    if rest.starts_with('-') {
        return false;
    }
    let name = rest.split('=').next().unwrap_or(rest);
    LONG_FLAGS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[&str]) -> Vec<String> {
        normalize_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&[
                "paddock",
                "-root",
                "/r",
                "-log-format=json",
                "kill",
                "-a",
                "x"
            ]),
            [
                "paddock",
                "--root",
                "/r",
                "--log-format=json",
                "kill",
                "-a",
                "x"
            ]
        );
    }

    #[test]
    fn go_style_spellings_parse() {
        let cli = Cli::try_parse_from(norm(&[
            "paddock",
            "--log-format",
            "json",
            "-root=/tmp/r",
            "create",
            "-bundle",
            "/b",
            "--pid-file=/p",
            "id1",
        ]))
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        assert_eq!(cli.root.unwrap(), PathBuf::from("/tmp/r"));
        match cli.command.unwrap() {
            Command::Create(c) => {
                assert_eq!(c.bundle, PathBuf::from("/b"));
                assert_eq!(c.pid_file.unwrap(), PathBuf::from("/p"));
                assert_eq!(c.id, "id1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn kill_takes_numeric_signal_and_global_flag_after_verb() {
        let cli =
            Cli::try_parse_from(norm(&["paddock", "kill", "--all", "c", "9", "--debug"])).unwrap();
        assert!(cli.debug);
        match cli.command.unwrap() {
            Command::Kill(k) => {
                assert!(k.all);
                assert_eq!(k.signal, "9");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn passthrough_after_double_dash() {
        assert_eq!(norm(&["a", "--", "-all"]), ["a", "--", "-all"]);
    }
}
