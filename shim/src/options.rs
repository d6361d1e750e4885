//! Runtime options: which paddock binary to drive, its state root, the cgroup driver, the log
//! level. containerd sends them with Create as `containerd.runc.v1.Options` (runc-style
//! runtimes), as `runtimeoptions.v1.Options` (the CRI plugin for any other runtime type: a TOML
//! file named by ConfigPath, or inline in ConfigBody), or not at all (`ctr run --runtime`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use containerd_shim::protos::protobuf::{well_known_types::any::Any, Message};
use containerd_shim::protos::shim::oci::Options as RuncOptions;
use serde::{Deserialize, Serialize};

/// Default state root for paddock under this shim; the namespace is appended.
const DEFAULT_ROOT: &str = "/run/containerd/paddock";
/// Where the options of a container are kept for the binary `delete` after a shim died.
const SAVED_FILE: &str = "paddock-options.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeOptions {
    /// paddock binary; empty = `paddock` next to the shim's own executable.
    pub binary: String,
    /// state root without the namespace; empty = DEFAULT_ROOT.
    pub root: String,
    pub systemd_cgroup: bool,
    /// paddock's own `--debug` when "debug" or "trace".
    pub log_level: String,
}

impl RuntimeOptions {
    /// Decode the options that came with Create (None: no options).
    pub fn from_any(any: Option<&Any>) -> Result<Self> {
        let Some(any) = any.filter(|a| !a.type_url.is_empty()) else {
            return Ok(Self::default());
        };
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        match name {
            "containerd.runc.v1.Options" => {
                let o = RuncOptions::parse_from_bytes(&any.value)
                    .context("decode containerd.runc.v1.Options")?;
                Ok(Self {
                    binary: o.binary_name,
                    root: o.root,
                    systemd_cgroup: o.systemd_cgroup,
                    log_level: String::new(),
                })
            }
            "runtimeoptions.v1.Options" => {
                let (path, body) = decode_runtimeoptions(&any.value)?;
                let text = if !body.is_empty() {
                    body
                } else if !path.is_empty() {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("read runtime options file {path}"))?
                } else {
                    return Ok(Self::default());
                };
                Self::from_toml(&text).with_context(|| format!("runtime options {path}"))
            }
            other => bail!("unsupported runtime options type {other:?}"),
        }
    }

    /// A flat TOML table: `BinaryName = "…"`, `Root = "…"`, `SystemdCgroup = true`,
    /// `LogLevel = "debug"` (snake_case spellings accepted too). Unknown keys are refused so a
    /// typo does not silently fall back to a default.
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut o = Self::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split_once('#').map_or(raw, |(a, _)| a).trim();
            if line.is_empty() || line.starts_with('[') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("line {}: expected key = value", n + 1))?;
            let (key, value) = (key.trim().trim_matches('"'), value.trim());
            let string = || -> Result<String> {
                let v = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .with_context(|| format!("line {}: {key} must be a string", n + 1))?;
                Ok(v.to_string())
            };
            match key {
                "BinaryName" | "binary_name" => o.binary = string()?,
                "Root" | "root" => o.root = string()?,
                "LogLevel" | "log_level" => o.log_level = string()?,
                "SystemdCgroup" | "systemd_cgroup" => {
                    o.systemd_cgroup = match value {
                        "true" => true,
                        "false" => false,
                        _ => bail!("line {}: SystemdCgroup must be true or false", n + 1),
                    }
                }
                _ => bail!("line {}: unknown option {key:?}", n + 1),
            }
        }
        Ok(o)
    }

    /// The paddock binary: the named one (a bare name is looked up next to the shim, then on
    /// PATH), or `paddock` next to the shim's executable.
    pub fn binary_path(&self) -> Result<PathBuf> {
        let exe_dir = std::env::current_exe()
            .context("find the shim's own executable")?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let name = if self.binary.is_empty() {
            "paddock"
        } else {
            self.binary.as_str()
        };
        if name.contains('/') {
            return Ok(PathBuf::from(name));
        }
        let next = exe_dir.join(name);
        if next.exists() {
            return Ok(next);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .with_context(|| {
                format!("runtime binary {name:?} not found next to the shim or on PATH")
            })
    }

    pub fn state_root(&self, namespace: &str) -> PathBuf {
        let root = if self.root.is_empty() {
            DEFAULT_ROOT
        } else {
            self.root.as_str()
        };
        Path::new(root).join(namespace)
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let json = serde_json::to_vec(self)?;
        std::fs::write(bundle.join(SAVED_FILE), json).context("save runtime options in the bundle")
    }

    pub fn load(bundle: &Path) -> Self {
        std::fs::read(bundle.join(SAVED_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// runtimeoptions.v1.Options is `type_url = 1; config_path = 2; config_body = 3` (all strings);
/// the crate does not ship it, so the three fields are read off the wire here.
fn decode_runtimeoptions(bytes: &[u8]) -> Result<(String, String)> {
    let mut input = containerd_shim::protos::protobuf::CodedInputStream::from_bytes(bytes);
    let (mut path, mut body) = (String::new(), String::new());
    while let Some(tag) = input.read_raw_tag_or_eof()? {
        match tag {
            0x0a => {
                input.read_string()?;
            }
            0x12 => path = input.read_string()?,
            0x1a => body = input.read_string()?,
            _ => bail!("runtimeoptions.v1.Options: unexpected field tag {tag}"),
        }
    }
    Ok((path, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys() {
        let o = RuntimeOptions::from_toml(
            "# paddock\nBinaryName = \"/opt/p/paddock\"\nRoot='/run/x'\nSystemdCgroup = true\nLogLevel = \"debug\"\n",
        )
        .unwrap();
        assert_eq!(o.binary, "/opt/p/paddock");
        assert_eq!(o.root, "/run/x");
        assert!(o.systemd_cgroup);
        assert_eq!(o.log_level, "debug");
        assert!(RuntimeOptions::from_toml("Bogus = 1").is_err());
        assert!(RuntimeOptions::from_toml("SystemdCgroup = yes").is_err());
    }

    #[test]
    fn runtimeoptions_wire() {
        // type_url "x", config_path "/p", config_body "Root = \"/r\""
        let mut b = vec![0x0a, 1, b'x', 0x12, 2, b'/', b'p', 0x1a];
        let body = b"Root = \"/r\"";
        b.push(body.len() as u8);
        b.extend_from_slice(body);
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: b,
            ..Default::default()
        };
        let o = RuntimeOptions::from_any(Some(&any)).unwrap();
        assert_eq!(o.root, "/r");
    }

    #[test]
    fn runc_options() {
        let ro = RuncOptions {
            binary_name: "pd".into(),
            systemd_cgroup: true,
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: ro.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let o = RuntimeOptions::from_any(Some(&any)).unwrap();
        assert_eq!((o.binary.as_str(), o.systemd_cgroup), ("pd", true));
        assert_eq!(
            RuntimeOptions::from_any(None).unwrap(),
            RuntimeOptions::default()
        );
    }
}
