//! `--log FILE --log-format text|json`. containerd keeps the last JSON line with
//! level "error" and decodes `time` as RFC 3339; Podman reads the whole file as one
//! object on create failure, so an error is logged exactly once. Without `--log`,
//! warnings and `--debug` lines go to stderr in the same form, as runc's do. Stderr
//! writes ignore failures: callers may close stderr before reading our stdout.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::cli::LogFormat;

struct Logger {
    file: Option<File>,
    format: LogFormat,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
/// Warnings held back while a command may still re-execute itself (exeseal.rs).
static HELD: Mutex<Option<Vec<String>>> = Mutex::new(None);

pub fn init(path: Option<&Path>, format: LogFormat, debug: bool) -> Result<()> {
    let file = match path {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(p)
                .with_context(|| format!("--log: open {}", p.display()))?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
    Ok(())
}

/// The error that ends a command: one plain line on stderr, one line in the log.
pub fn error(msg: &str) {
    write_stderr(&format!("{msg}\n"));
    write_log("error", msg);
}

/// A warning: to the log, or to stderr when there is no `--log`.
pub fn warn(msg: &str) {
    if let Ok(mut held) = HELD.lock() {
        if let Some(held) = held.as_mut() {
            held.push(msg.to_string());
            return;
        }
    }
    write_log("warning", msg);
}

/// From now on warnings wait for `release_warnings` or `discard_warnings`.
pub fn hold_warnings() {
    if let Ok(mut held) = HELD.lock() {
        held.get_or_insert_with(Vec::new);
    }
}

/// Gives the held warnings, in order, and stops holding.
pub fn release_warnings() {
    let held = HELD.lock().ok().and_then(|mut h| h.take());
    for msg in held.unwrap_or_default() {
        write_log("warning", &msg);
    }
}

/// Drops the held warnings (a re-executed command gives them again) and stops holding.
pub fn discard_warnings() {
    if let Ok(mut held) = HELD.lock() {
        held.take();
    }
}

/// Whether `--debug` was given: callers skip building debug text otherwise.
pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

/// A `--debug` line: to the log, or to stderr when there is no `--log`.
pub fn debug(msg: &str) {
    if debug_enabled() {
        write_log("debug", msg);
    }
}

pub fn write_stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Errors reach stderr as plain text through `error`, so only warnings and debug
/// lines fall back to stderr when there is no log file.
fn write_log(level: &str, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        if level != "error" {
            write_stderr(&format_line(LogFormat::Text, level, msg));
        }
        return;
    };
    let line = format_line(logger.format, level, msg);
    match logger.file.as_ref() {
        Some(mut file) => {
            let _ = file.write_all(line.as_bytes());
        }
        None if level != "error" => write_stderr(&line),
        None => {}
    }
}

fn format_line(format: LogFormat, level: &str, msg: &str) -> String {
    let time = rfc3339_now();
    match format {
        LogFormat::Json => {
            let obj = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{obj}\n")
        }
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

pub fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Formats a UTC timestamp as RFC 3339 with nanoseconds, as Go's time.RFC3339Nano.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_795_415_270, 5), "2026-11-23T06:27:50.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }
}
