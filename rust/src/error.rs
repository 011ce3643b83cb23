//! The one public error type of the core.
//!
//! Every variant carries the context a user needs to act on it (URI, bucket, key, file, HTTP
//! status, OSS error code, request id). No variant ever holds a credential: messages are built
//! from the request target and the server's answer only.

use std::fmt;

use crate::protocol::{Dialect, Target};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form the Python layer maps onto its exception classes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-supplied value is malformed (URI, endpoint, region, option).
    ///
    /// User action: fix the named value.
    #[error("{what} {value:?} is invalid: {reason}")]
    InvalidInput {
        /// Which input ("OSS URI", "endpoint", ...).
        what: &'static str,
        /// The offending value as given.
        value: String,
        /// Why it is rejected, including what was expected.
        reason: String,
    },

    /// A configuration or credentials file could not be read or understood.
    ///
    /// User action: fix or create the named file.
    #[error("{kind} file {path}: {reason}")]
    File {
        /// "config" or "credentials".
        kind: &'static str,
        /// Path of the file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No credential source produced credentials.
    ///
    /// User action: pass `cred_path=`, `cred_provider=`, or set the environment variables listed.
    #[error("no credentials found; tried: {tried}")]
    NoCredentials {
        /// Every source tried, in order, with why it gave nothing.
        tried: String,
    },

    /// A credentials provider object failed or returned something unusable.
    ///
    /// User action: fix the provider named in the message.
    #[error("credentials provider {provider} failed: {reason}")]
    CredentialProvider {
        /// Which provider (its type name).
        provider: String,
        /// What went wrong.
        reason: String,
    },

    /// The server answered with an error status.
    #[error("{0}")]
    Service(Box<ServiceError>),

    /// The request could not be sent or its answer could not be received.
    #[error("{method} {target}: {reason}")]
    Transport {
        /// HTTP method.
        method: String,
        /// What the request was for.
        target: Target,
        /// The transport failure (connect, reset, timeout, ...).
        reason: String,
        /// Whether the failure was a timeout.
        timeout: bool,
        /// Whether the request may have reached the server (false when connecting failed),
        /// which decides whether a request that is not idempotent may be sent again.
        sent: bool,
    },

    /// The server's answer was received but is not what the protocol promises.
    #[error("{target}: {reason}")]
    Protocol {
        /// What the request was for.
        target: Target,
        /// What was wrong with the answer.
        reason: String,
    },

    /// The object was replaced while it was being read: a read pinned to the version first
    /// seen (`If-Match`) was refused, so no bytes of two versions are ever mixed.
    ///
    /// User action: read the object again from its start.
    #[error(
        "{target} changed while being read: it no longer has ETag {etag} \
         (HTTP 412 PreconditionFailed{})",
        request_id_suffix(request_id)
    )]
    Changed {
        /// The object.
        target: Target,
        /// The ETag of the version the read started on.
        etag: String,
        /// Request id of the refused request.
        request_id: String,
    },

    /// A bug or a broken invariant inside the connector.
    #[error("internal error: {0}")]
    Internal(String),
}

/// An error answer from the object store, decoded from its XML body (or `x-oss-err`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP method of the failed request.
    pub method: String,
    /// HTTP status code.
    pub status: u16,
    /// OSS error code, e.g. `NoSuchKey`; empty when the server sent none.
    pub code: String,
    /// The server's human-readable message.
    pub message: String,
    /// `x-oss-request-id`, for support tickets.
    pub request_id: String,
    /// OSS `EC` detail code.
    pub ec: String,
    /// What the request was for.
    pub target: Target,
    /// The server's clock when it says ours is skewed (`ServerTime`), as sent.
    pub server_time: String,
}

impl ServiceError {
    /// Whether the code says the credentials are stale or malformed, in the protocol of the
    /// target's scheme.
    fn refuses_credentials(&self) -> bool {
        Dialect::of_scheme(self.target.scheme).is_some_and(|d| d.refuses_credentials(&self.code))
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() {
            "(no error code)"
        } else {
            &self.code
        };
        write!(
            f,
            "{} {} failed: HTTP {} {}",
            self.method, self.target, self.status, code
        )?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if !self.ec.is_empty() {
            write!(f, " (EC {})", self.ec)?;
        }
        if !self.request_id.is_empty() {
            write!(f, " [request id {}]", self.request_id)?;
        }
        Ok(())
    }
}

/// The broad class of an error, which decides the Python exception type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bucket or key does not exist.
    NotFound,
    /// Authentication or authorisation refused.
    PermissionDenied,
    /// Bad user input: URI, endpoint, config, credentials.
    InvalidInput,
    /// A request timed out.
    Timeout,
    /// The object changed while being read.
    Changed,
    /// Anything else.
    Other,
}

impl Error {
    /// Classifies the error for the Python exception hierarchy.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. }
            | Error::File { .. }
            | Error::NoCredentials { .. }
            | Error::CredentialProvider { .. } => ErrorKind::InvalidInput,
            // By status, as S3's and OSS's codes agree on them (NoSuchKey, NoSuchBucket,
            // NoSuchUpload: 404; AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId: 403),
            // and a HEAD's error has a status but no code.
            Error::Service(e) => match e.status {
                404 => ErrorKind::NotFound,
                401 | 403 => ErrorKind::PermissionDenied,
                // S3 refuses a stale or malformed session token with 400 (`ExpiredToken`).
                _ if e.refuses_credentials() => ErrorKind::PermissionDenied,
                _ => ErrorKind::Other,
            },
            Error::Transport { timeout: true, .. } => ErrorKind::Timeout,
            Error::Changed { .. } => ErrorKind::Changed,
            _ => ErrorKind::Other,
        }
    }

    /// The service error details, when the server answered with an error.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            Error::Service(e) => Some(e),
            _ => None,
        }
    }

    /// The object or bucket the failed request was for, when there was one.
    pub(crate) fn target(&self) -> Option<&Target> {
        match self {
            Error::Service(e) => Some(&e.target),
            Error::Transport { target, .. }
            | Error::Protocol { target, .. }
            | Error::Changed { target, .. } => Some(target),
            _ => None,
        }
    }

    /// The request id of the server's answer, when there was one.
    pub(crate) fn request_id(&self) -> &str {
        match self {
            Error::Service(e) => &e.request_id,
            Error::Changed { request_id, .. } => request_id,
            _ => "",
        }
    }

    pub(crate) fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

fn request_id_suffix(request_id: &str) -> String {
    if request_id.is_empty() {
        String::new()
    } else {
        format!(", request id {request_id}")
    }
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        Error::Service(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_error_message_names_target_code_and_request_id() {
        let e = Error::from(ServiceError {
            method: "GET".into(),
            status: 404,
            code: "NoSuchKey".into(),
            message: "The specified key does not exist.".into(),
            request_id: "5C3D9175B6FC201293AD4890".into(),
            ec: "0026-00000001".into(),
            target: Target::oss("bkt", "a/b.png"),
            server_time: String::new(),
        });
        let text = e.to_string();
        assert!(text.contains("oss://bkt/a/b.png"), "{text}");
        assert!(text.contains("NoSuchKey"), "{text}");
        assert!(text.contains("404"), "{text}");
        assert!(text.contains("5C3D9175B6FC201293AD4890"), "{text}");
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn s3_and_oss_codes_map_to_the_same_kinds() {
        let s3 = |bucket: &str| Target {
            scheme: crate::protocol::dialect::S3.scheme,
            bucket: bucket.into(),
            key: "k".into(),
        };
        // Codes and statuses from
        // https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
        for (target, status, code, want) in [
            (s3("b"), 404, "NoSuchKey", ErrorKind::NotFound),
            (s3("b"), 404, "NoSuchBucket", ErrorKind::NotFound),
            (s3("b"), 404, "NoSuchUpload", ErrorKind::NotFound),
            (s3("b"), 404, "", ErrorKind::NotFound), // HEAD: status only
            (s3("b"), 403, "AccessDenied", ErrorKind::PermissionDenied),
            (
                s3("b"),
                403,
                "SignatureDoesNotMatch",
                ErrorKind::PermissionDenied,
            ),
            (
                s3("b"),
                403,
                "InvalidAccessKeyId",
                ErrorKind::PermissionDenied,
            ),
            (s3("b"), 403, "NotSignedUp", ErrorKind::PermissionDenied),
            (s3("b"), 403, "", ErrorKind::PermissionDenied),
            (s3("b"), 400, "ExpiredToken", ErrorKind::PermissionDenied),
            (s3("b"), 400, "InvalidToken", ErrorKind::PermissionDenied),
            (
                s3("b"),
                400,
                "TokenRefreshRequired",
                ErrorKind::PermissionDenied,
            ),
            (s3("b"), 503, "SlowDown", ErrorKind::Other),
            (s3("b"), 400, "InvalidArgument", ErrorKind::Other),
            (s3("b"), 400, "SecurityTokenExpired", ErrorKind::Other), // OSS's name
            (Target::oss("b", "k"), 404, "NoSuchKey", ErrorKind::NotFound),
            (
                Target::oss("b", "k"),
                403,
                "SecurityTokenExpired",
                ErrorKind::PermissionDenied,
            ),
            (Target::oss("b", "k"), 400, "ExpiredToken", ErrorKind::Other), // S3's name
        ] {
            let e = Error::from(ServiceError {
                status,
                code: code.into(),
                target,
                ..Default::default()
            });
            assert_eq!(e.kind(), want, "{e}");
        }
    }

    #[test]
    fn kinds_follow_status() {
        let denied = Error::from(ServiceError {
            status: 403,
            ..Default::default()
        });
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        let busy = Error::from(ServiceError {
            status: 503,
            ..Default::default()
        });
        assert_eq!(busy.kind(), ErrorKind::Other);
        assert_eq!(
            Error::invalid("OSS URI", "s3://x", "must start with oss://").kind(),
            ErrorKind::InvalidInput
        );
    }
}
