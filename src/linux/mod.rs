//! One kernel concern per file. Each module offers "plan" functions that are pure
//! (unit-tested without root) and thin "apply" functions that touch the kernel.
//! Only `process/init.rs` and `process/mod.rs` know the order in which they run.

pub mod caps;
pub mod cgroups;
pub mod criu;
pub mod dbus;
pub mod devices;
pub mod exeseal;
pub mod hooks;
pub mod idmap;
pub mod intel_rdt;
pub mod lsm;
pub mod mounts;
pub mod namespaces;
pub mod netdev;
pub mod pidfd;
pub mod procattrs;
pub mod rlimits;
pub mod rootfs;
pub mod rootless;
pub mod safepath;
pub mod seccomp;
pub mod sysctl;
pub mod tty;
pub mod userns;
