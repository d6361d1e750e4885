//! Only the errors callers branch on. Their wording is matched by containerd and
//! Podman (reference/integration.md), so it must not change.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeError {
    NotExist,
    Exists,
    NotRunning,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeError::NotExist => "container does not exist",
            RuntimeError::Exists => "container ID already exists",
            RuntimeError::NotRunning => "container not running",
        })
    }
}

impl std::error::Error for RuntimeError {}
