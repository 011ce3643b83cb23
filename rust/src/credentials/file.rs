//! The connector's JSON credentials file:
//! `{"AccessKeyId", "AccessKeySecret", "SecurityToken"?, "Expiration"?}`.
//!
//! The file is read again on every refresh, so a sidecar that rewrites it with a new STS token
//! is picked up before the old token expires.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::{Credential, ProvideCredential};
use crate::error::{Error, Result};

/// Reads credentials from a JSON file.
#[derive(Debug, Clone)]
pub(crate) struct FileProvider {
    path: PathBuf,
    /// A missing optional file means "not here"; a missing explicit file is an error.
    optional: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialFile {
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
    security_token: Option<String>,
    expiration: Option<String>,
}

impl FileProvider {
    /// A file the user named: it must exist and be valid.
    pub(crate) fn required(path: impl Into<PathBuf>) -> Self {
        FileProvider {
            path: path.into(),
            optional: false,
        }
    }

    /// The documented default location, used only when it exists.
    pub(crate) fn optional(path: impl Into<PathBuf>) -> Self {
        FileProvider {
            path: path.into(),
            optional: true,
        }
    }

    /// `~/.alibabacloud/credentials`, when the home directory is known.
    pub(crate) fn default_path() -> Option<PathBuf> {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".alibabacloud/credentials"))
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::File {
            kind: "credentials",
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }
}

impl ProvideCredential for FileProvider {
    fn provide_credential(&self) -> Result<Option<Credential>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if self.optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("cannot be read: {e}"))),
        };
        // serde_json's error names line and column but never echoes the secret it contains.
        let file: CredentialFile = serde_json::from_str(&text).map_err(|e| {
            self.error(format!(
                "is not a JSON object with AccessKeyId and AccessKeySecret: {e}"
            ))
        })?;
        let non_empty = |v: Option<String>, name: &str| {
            v.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| self.error(format!("{name} is missing or empty")))
        };
        let access_key_id = non_empty(file.access_key_id, "AccessKeyId")?;
        let access_key_secret = non_empty(file.access_key_secret, "AccessKeySecret")?;
        let expiration = match file.expiration.filter(|s| !s.is_empty()) {
            Some(s) => Some(parse_expiration(&s).ok_or_else(|| {
                self.error(format!(
                    "Expiration {s:?} is not an ISO-8601 UTC time such as 2024-01-01T00:00:00Z"
                ))
            })?),
            None => None,
        };
        Ok(Some(Credential {
            access_key_id: access_key_id.trim().to_string(),
            access_key_secret: access_key_secret.trim().to_string(),
            security_token: file.security_token.filter(|t| !t.is_empty()),
            expiration,
        }))
    }

    fn describe(&self) -> String {
        let role = if self.optional {
            "default credentials file"
        } else {
            "cred_path"
        };
        format!("{role} {} (not found)", self.path.display())
    }
}

fn parse_expiration(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Some token services omit the zone; the documented format is UTC.
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("osstc-cred-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cred.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_all_fields() {
        let p = write(
            "ok",
            r#"{"AccessKeyId": "id", "AccessKeySecret": "sec", "SecurityToken": "tok",
                "Expiration": "2030-01-02T03:04:05Z"}"#,
        );
        let c = FileProvider::required(&p)
            .provide_credential()
            .unwrap()
            .unwrap();
        assert_eq!(c.access_key_id, "id");
        assert_eq!(c.security_token.as_deref(), Some("tok"));
        assert_eq!(
            c.expiration.unwrap().to_rfc3339(),
            "2030-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn missing_required_file_is_an_error_naming_it() {
        let err = FileProvider::required("/nonexistent/cred.json")
            .provide_credential()
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/cred.json"), "{err}");
    }

    #[test]
    fn missing_optional_file_is_nothing() {
        let got = FileProvider::optional("/nonexistent/cred.json").provide_credential();
        assert!(got.unwrap().is_none());
    }

    #[test]
    fn malformed_files_are_named_without_leaking_the_secret() {
        for (name, text, needle) in [
            (
                "notjson",
                "AccessKeySecret = hunter2hunter2",
                "not a JSON object",
            ),
            (
                "nosecret",
                r#"{"AccessKeyId": "id"}"#,
                "AccessKeySecret is missing",
            ),
            (
                "badexp",
                r#"{"AccessKeyId": "id", "AccessKeySecret": "hunter2hunter2", "Expiration": "soon"}"#,
                "Expiration",
            ),
        ] {
            let p = write(name, text);
            let err = FileProvider::required(&p)
                .provide_credential()
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{name}: {err}");
            assert!(err.contains(&p.display().to_string()), "{name}: {err}");
            assert!(!err.contains("hunter2"), "{name}: {err}");
        }
    }
}
