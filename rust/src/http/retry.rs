//! What is retried, how long to wait, and the budget shared by all attempts of one operation.
//!
//! As the official OSS SDKs: 5xx, 408, 429, the dialect's throttling codes, `RequestTimeTooSkewed`
//! the dialect's codes of a body that arrived corrupt (S3's `BadDigest`, the CRC sent with it
//! not matching) and transport failures are retried with full-jitter backoff `rand(0,1) * min(2^n * base, max)`. Auth errors are not,
//! except once after reloading credentials when the server says the token expired.

use std::time::Duration;

use crate::error::Error;
use crate::protocol::Dialect;

/// Retry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryConfig {
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// Backoff base delay.
    pub base_delay: Duration,
    /// Backoff ceiling.
    pub max_delay: Duration,
    /// No retry starts after this much time since the operation began.
    pub deadline: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 15,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            deadline: Duration::from_secs(600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Try again after a backoff.
    Retry,
    /// Reload credentials, then try again (once per operation).
    RefreshCredentials,
    /// Give up and report the error.
    Fail,
}

/// Classifies a failed attempt.
pub(crate) fn classify(error: &Error, dialect: &Dialect) -> Decision {
    match error {
        Error::Service(e) => {
            if e.code == dialect.clock_skew_code
                || dialect.corruption_codes.contains(&e.code.as_str())
            {
                Decision::Retry
            } else if dialect.refuses_credentials(&e.code) {
                Decision::RefreshCredentials
            } else if e.status >= 500 || e.status == 408 || dialect.is_throttling(e.status, &e.code)
            {
                // Throttling codes are retried whatever their status: S3's `Throttling`,
                // `RequestLimitExceeded`, ... come with 400.
                Decision::Retry
            } else {
                Decision::Fail
            }
        }
        Error::Transport { .. } | Error::Protocol { .. } => Decision::Retry,
        _ => Decision::Fail,
    }
}

/// The attempt budget of one operation (a GET including any body resumes, one list page, ...).
#[derive(Debug)]
pub(crate) struct RetryContext {
    config: RetryConfig,
    dialect: &'static Dialect,
    attempts: u32,
    refreshed: bool,
    started: std::time::Instant,
}

impl RetryContext {
    /// A fresh budget.
    pub(crate) fn new(config: RetryConfig, dialect: &'static Dialect) -> Self {
        RetryContext {
            config,
            dialect,
            attempts: 0,
            refreshed: false,
            started: std::time::Instant::now(),
        }
    }

    /// Records a failed attempt; returns the delay before the next one, or `None` to give up.
    /// `jitter` is a uniform sample from `[0, 1)`.
    pub(crate) fn on_failure(&mut self, error: &Error, jitter: f64) -> Option<Duration> {
        self.attempts += 1;
        let decision = classify(error, self.dialect);
        if decision == Decision::Fail || self.attempts >= self.config.max_attempts {
            return None;
        }
        if decision == Decision::RefreshCredentials {
            if self.refreshed {
                return None;
            }
            self.refreshed = true;
            return Some(Duration::ZERO);
        }
        let delay = full_jitter(&self.config, self.attempts - 1, jitter);
        if self.started.elapsed() + delay >= self.config.deadline {
            return None;
        }
        Some(delay)
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// `jitter * min(2^n * base, max)`, `jitter` uniform in `[0, 1)`.
pub(crate) fn full_jitter(config: &RetryConfig, n: u32, jitter: f64) -> Duration {
    let ceiling = config
        .base_delay
        .saturating_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
        .min(config.max_delay);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServiceError;
    use crate::protocol::dialect::S3;
    use crate::protocol::{Target, OSS};

    fn service(status: u16, code: &str) -> Error {
        Error::from(ServiceError {
            status,
            code: code.into(),
            ..Default::default()
        })
    }

    #[test]
    fn classification_table() {
        let transport = Error::Transport {
            method: "GET".into(),
            target: Target::oss("b", "k"),
            reason: "connection reset".into(),
            timeout: false,
            sent: true,
        };
        for (error, want) in [
            (service(500, "InternalError"), Decision::Retry),
            (service(503, "ServiceUnavailable"), Decision::Retry),
            (service(429, "TotalQpsLimitExceeded"), Decision::Retry),
            (service(408, "RequestTimeout"), Decision::Retry),
            (service(403, "RequestTimeTooSkewed"), Decision::Retry),
            (
                service(403, "SecurityTokenExpired"),
                Decision::RefreshCredentials,
            ),
            (
                service(403, "InvalidAccessKeyId"),
                Decision::RefreshCredentials,
            ),
            (service(403, "SignatureDoesNotMatch"), Decision::Fail),
            (service(403, "AccessDenied"), Decision::Fail),
            (service(404, "NoSuchKey"), Decision::Fail),
            (service(400, "InvalidArgument"), Decision::Fail),
            (transport, Decision::Retry),
            (Error::invalid("OSS URI", "x", "bad"), Decision::Fail),
        ] {
            assert_eq!(classify(&error, &OSS), want, "{error}");
        }
    }

    #[test]
    fn s3_classification_table() {
        for (error, want) in [
            (service(503, "SlowDown"), Decision::Retry),
            (service(503, ""), Decision::Retry), // a HEAD's bare 503
            (service(500, "InternalError"), Decision::Retry),
            (service(400, "Throttling"), Decision::Retry),
            (service(400, "ThrottlingException"), Decision::Retry),
            (service(400, "RequestLimitExceeded"), Decision::Retry),
            (service(403, "RequestTimeTooSkewed"), Decision::Retry),
            // The body arrived other than sent (its CRC does not match): send it again.
            (service(400, "BadDigest"), Decision::Retry),
            (service(400, "XAmzContentSHA256Mismatch"), Decision::Retry),
            (service(400, "InvalidDigest"), Decision::Fail), // a malformed digest
            (service(400, "ExpiredToken"), Decision::RefreshCredentials),
            (service(400, "InvalidToken"), Decision::RefreshCredentials),
            (
                service(400, "TokenRefreshRequired"),
                Decision::RefreshCredentials,
            ),
            // A wrong key id: reloading the same key cannot help (OSS reloads on it).
            (service(403, "InvalidAccessKeyId"), Decision::Fail),
            (service(403, "NotSignedUp"), Decision::Fail),
            (service(403, "SignatureDoesNotMatch"), Decision::Fail),
            (service(403, "AccessDenied"), Decision::Fail),
            (service(404, "NoSuchKey"), Decision::Fail),
            (service(404, "NoSuchUpload"), Decision::Fail),
            (service(404, ""), Decision::Fail), // a HEAD's bare 404
            // OSS's names mean nothing to S3.
            (service(403, "SecurityTokenExpired"), Decision::Fail),
            (service(400, "QpsLimitExceeded"), Decision::Fail),
        ] {
            assert_eq!(classify(&error, &S3), want, "{error}");
        }
    }

    #[test]
    fn backoff_grows_then_caps() {
        let cfg = RetryConfig::default();
        let ceilings: Vec<u128> = (0..10)
            .map(|n| full_jitter(&cfg, n, 1.0).as_millis())
            .collect();
        assert_eq!(
            ceilings,
            vec![200, 400, 800, 1600, 3200, 6400, 12800, 20000, 20000, 20000]
        );
        assert_eq!(full_jitter(&cfg, 5, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(&cfg, 1, 0.5), Duration::from_millis(200));
        assert_eq!(full_jitter(&cfg, 40, 1.0), Duration::from_secs(20));
    }

    #[test]
    fn budget_is_shared_and_refresh_happens_once() {
        let rng = 0.0;
        let mut ctx = RetryContext::new(
            RetryConfig {
                max_attempts: 3,
                ..Default::default()
            },
            &OSS,
        );
        assert!(ctx.on_failure(&service(503, ""), rng).is_some());
        assert!(ctx.on_failure(&service(503, ""), rng).is_some());
        assert!(ctx.on_failure(&service(503, ""), rng).is_none());

        let mut ctx = RetryContext::new(RetryConfig::default(), &OSS);
        let expired = service(403, "SecurityTokenExpired");
        assert_eq!(ctx.on_failure(&expired, rng), Some(Duration::ZERO));
        assert!(ctx.on_failure(&expired, rng).is_none());
        assert!(RetryContext::new(RetryConfig::default(), &OSS)
            .on_failure(&service(404, "NoSuchKey"), rng)
            .is_none());

        let mut past_deadline = RetryContext::new(
            RetryConfig {
                deadline: Duration::ZERO,
                ..Default::default()
            },
            &OSS,
        );
        assert!(past_deadline.on_failure(&service(503, ""), 0.5).is_none());
    }
}
