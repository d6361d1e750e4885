//! A minimal D-Bus client for the systemd cgroup driver: the wire format
//! (wire.rs) and a blocking connection to the system bus (conn.rs). Our own
//! rather than a crate: the D-Bus crates bring an async runtime or threads,
//! and the runtime must stay single-threaded and small.

pub mod conn;
pub mod wire;
