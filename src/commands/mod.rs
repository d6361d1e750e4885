//! One thin orchestrator per subcommand.

pub mod checkpoint;
pub mod completion;
mod console_proxy;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
mod notify_socket;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod resume;
pub mod run;
pub mod spec;
pub mod spec_default;
pub mod start;
pub mod state;
pub mod update;

use std::path::PathBuf;

/// Global flags every command may need.
pub struct Globals {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `--rootless`: the container may go without a cgroup where none can be made.
    pub rootless_cgroups: bool,
}
