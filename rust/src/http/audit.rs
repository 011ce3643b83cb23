//! The audit log (`auditPath`): one tab-separated line per request attempt.
//!
//! `time  method  oss://bucket/key  status  bytes  latency_ms  request_id  attempt_error`.
//! Built from the request target and the answer only, so no credential can appear in it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use crate::error::{Error, Result};

/// An append-only audit file.
#[derive(Debug)]
pub(crate) struct AuditLog {
    path: String,
    file: Mutex<File>,
}

/// One audited attempt.
#[derive(Debug)]
pub(crate) struct AuditRecord<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// `oss://bucket/key`.
    pub target: &'a str,
    /// HTTP status; 0 when no answer came.
    pub status: u16,
    /// Content-Length of the answer.
    pub bytes: u64,
    /// Time to the answer's headers.
    pub latency: Duration,
    /// `x-oss-request-id`.
    pub request_id: &'a str,
    /// The failure, when the attempt failed (OSS code or transport reason).
    pub error: &'a str,
}

impl AuditLog {
    /// Opens (creating, appending) the audit file.
    ///
    /// # Errors
    /// `File` naming the path when it cannot be opened for appending.
    pub(crate) fn open(path: &str) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::File {
                kind: "audit",
                path: path.to_string(),
                reason: format!("cannot be opened for appending: {e}"),
            })?;
        Ok(AuditLog {
            path: path.to_string(),
            file: Mutex::new(file),
        })
    }

    /// Appends one line; a failing write is logged, never raised into the data path.
    pub(crate) fn record(&self, r: &AuditRecord<'_>) {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            r.method,
            clean(r.target),
            r.status,
            r.bytes,
            r.latency.as_millis(),
            clean(r.request_id),
            clean(r.error),
        );
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line: with O_APPEND, lines from several processes do not interleave.
        if let Err(e) = file.write_all(line.as_bytes()) {
            log::warn!(target: "osstorchconnector", "audit file {}: {e}", self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_tab_separated_line_per_record() {
        let path = std::env::temp_dir().join(format!("osstc-audit-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = AuditLog::open(path.to_str().unwrap()).unwrap();
        for status in [200, 503] {
            log.record(&AuditRecord {
                method: "GET",
                target: "oss://b/a\tb",
                status,
                bytes: 10,
                latency: Duration::from_millis(12),
                request_id: "RID",
                error: if status == 200 {
                    ""
                } else {
                    "ServiceUnavailable"
                },
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            &lines[0][1..],
            ["GET", "oss://b/a b", "200", "10", "12", "RID", ""]
        );
        assert_eq!(lines[1][3], "503");
        assert_eq!(lines[1][7], "ServiceUnavailable");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn unopenable_path_is_named() {
        let err = AuditLog::open("/nonexistent/dir/audit.log")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/dir/audit.log"), "{err}");
    }
}
