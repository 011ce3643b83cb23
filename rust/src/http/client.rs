//! The OSS client and its one request path: sign, send, decode errors, retry.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use percent_encoding::utf8_percent_encode;

use crate::credentials::CredentialCache;
use crate::error::{Error, Result, ServiceError};
use crate::http::audit::{AuditLog, AuditRecord};
use crate::http::retry::{RetryConfig, RetryContext};
use crate::http::throttle::AdaptiveLimit;
use crate::protocol::endpoint::{Endpoint, QUERY_ENCODE_SET};
use crate::protocol::xml::ErrorBody;
use crate::sign::{RequestHead, Signer};

/// Network settings of a client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Retry budget per operation.
    pub retry: RetryConfig,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for the response headers to arrive.
    pub first_byte_timeout: Duration,
    /// Time allowed between two reads of a body.
    pub read_timeout: Duration,
    /// Idle connections kept per host; at least the pipeline's concurrency.
    pub max_idle_connections: usize,
    /// Attempts in flight at most (narrower while throttled).
    pub max_concurrency: usize,
    /// Where each attempt is recorded, if anywhere.
    pub audit: Option<Arc<AuditLog>>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            max_idle_connections: 256,
            max_concurrency: 24,
            audit: None,
        }
    }
}

/// An OSS client bound to one endpoint, region signer and credential source.
#[derive(Debug)]
pub struct OssClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    signer: Arc<dyn Signer>,
    credentials: Arc<CredentialCache>,
    settings: ClientSettings,
    /// Server time minus local time, learnt from `RequestTimeTooSkewed` answers.
    clock_offset_ms: AtomicI64,
    /// Attempts in flight, narrowed while the store throttles.
    limit: AdaptiveLimit,
}

impl OssClient {
    /// Builds a client. Must run inside the process's runtime when requests are sent.
    ///
    /// # Errors
    /// `Internal` when the TLS/HTTP stack cannot be initialised.
    pub fn new(
        endpoint: Endpoint,
        signer: Arc<dyn Signer>,
        credentials: Arc<CredentialCache>,
        settings: ClientSettings,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .pool_max_idle_per_host(settings.max_idle_connections)
            .tcp_nodelay(true)
            .http1_only()
            // OSS answers ranged GETs of compressed objects byte-exact only without this.
            .no_gzip()
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(OssClient {
            http,
            endpoint,
            signer,
            credentials,
            clock_offset_ms: AtomicI64::new(0),
            limit: AdaptiveLimit::new(settings.max_concurrency),
            settings,
        })
    }

    /// Attempts allowed in flight right now (lowered while the store throttles).
    pub fn concurrency_limit(&self) -> usize {
        self.limit.limit()
    }

    /// A fresh retry budget for one operation.
    pub fn retry_context(&self) -> RetryContext {
        RetryContext::new(self.settings.retry.clone())
    }

    /// Sends `head` until it succeeds or `ctx` says to give up; returns the successful response.
    ///
    /// Each attempt is signed again: the date moves and credentials may have been refreshed.
    ///
    /// # Errors
    /// The last attempt's error: `Service` with the decoded OSS error, or `Transport`.
    pub async fn send(
        &self,
        head: &RequestHead,
        ctx: &mut RetryContext,
    ) -> Result<reqwest::Response> {
        loop {
            let error = match self.attempt(head).await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            self.backoff(ctx, &error).await.ok_or(error)?;
        }
    }

    /// Records a failed attempt in `ctx` and sleeps before the next; `None` means give up.
    pub(crate) async fn backoff(&self, ctx: &mut RetryContext, error: &Error) -> Option<()> {
        let delay = ctx.on_failure(error, rand::random::<f64>())?;
        if matches!(
            crate::http::retry::classify(error),
            crate::http::retry::Decision::RefreshCredentials
        ) {
            if let Ok(stale) = self.credentials.get() {
                self.credentials.invalidate(&stale);
            }
        }
        log::info!(
            target: "osstorchconnector",
            "retrying after attempt {} failed ({error}); waiting {} ms",
            ctx.attempts(),
            delay.as_millis()
        );
        tokio::time::sleep(delay).await;
        Some(())
    }

    async fn attempt(&self, head: &RequestHead) -> Result<reqwest::Response> {
        let _permit = self.limit.acquire().await;
        let started = std::time::Instant::now();
        let result = self.attempt_unlimited(head).await;
        if let Some(audit) = &self.settings.audit {
            audit_attempt(audit, head, &result, started.elapsed());
        }
        match &result {
            Ok(_) => self.limit.on_success(),
            Err(e) if is_throttling(e) => self.limit.on_throttled(std::time::Instant::now()),
            Err(_) => {}
        }
        result
    }

    async fn attempt_unlimited(&self, head: &RequestHead) -> Result<reqwest::Response> {
        let credential = self.credentials.get()?;
        let mut signed = head.clone();
        self.signer.sign(&mut signed, &credential, self.now())?;
        let bucket = signed.bucket.as_deref().unwrap_or("");
        let mut url = self.endpoint.url(bucket, &signed.key);
        if !signed.query.is_empty() {
            url.push('?');
            url.push_str(&encode_query(&signed.query));
        }
        let sending = self
            .http
            .request(signed.method.clone(), url)
            .headers(signed.headers)
            .send();
        let response = tokio::time::timeout(self.settings.first_byte_timeout, sending)
            .await
            .map_err(|_| Error::Transport {
                method: head.method.to_string(),
                target: target(head),
                reason: format!(
                    "no response within {} ms (firstByteTimeoutMs)",
                    self.settings.first_byte_timeout.as_millis()
                ),
                timeout: true,
            })?
            .map_err(|e| transport_error(head, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let server_time = response
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok());
        let error = service_error(head, response).await;
        if let Some(e) = error.service().filter(|e| e.code == "RequestTimeTooSkewed") {
            // The error body's ServerTime is the server's own clock; Date may come from a proxy.
            let from_body = DateTime::parse_from_rfc3339(&e.server_time).ok();
            if let Some(t) = from_body.or(server_time) {
                self.learn_clock_offset(t.with_timezone(&Utc));
            }
        }
        Err(error)
    }

    /// Local time corrected by what the server told us of its clock.
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    fn learn_clock_offset(&self, server_time: DateTime<Utc>) {
        let offset = (server_time - Utc::now()).num_milliseconds();
        log::warn!(
            target: "osstorchconnector",
            "the server's clock is {offset} ms off ours (RequestTimeTooSkewed); signing with its time"
        );
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
    }
}

fn audit_attempt(
    audit: &AuditLog,
    head: &RequestHead,
    result: &Result<reqwest::Response>,
    latency: std::time::Duration,
) {
    let target = target(head);
    let method = head.method.as_str();
    match result {
        Ok(response) => {
            let request_id = response
                .headers()
                .get("x-oss-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            audit.record(&AuditRecord {
                method,
                target: &target,
                status: response.status().as_u16(),
                bytes: response.content_length().unwrap_or(0),
                latency,
                request_id,
                error: "",
            });
        }
        Err(e) => {
            let (status, request_id, reason) = match e.service() {
                Some(s) => (s.status, s.request_id.as_str(), s.code.clone()),
                None => (0, "", e.to_string()),
            };
            audit.record(&AuditRecord {
                method,
                target: &target,
                status,
                bytes: 0,
                latency,
                request_id,
                error: &reason,
            });
        }
    }
}

/// Whether an answer asks the client to slow down.
fn is_throttling(error: &Error) -> bool {
    error
        .service()
        .is_some_and(|e| e.status == 429 || e.status == 503 || e.code.contains("LimitExceeded"))
}

/// `oss://bucket/key` of a request, for messages.
pub(crate) fn target(head: &RequestHead) -> String {
    format!(
        "oss://{}/{}",
        head.bucket.as_deref().unwrap_or(""),
        head.key
    )
}

pub(crate) fn transport_error(head: &RequestHead, e: &reqwest::Error) -> Error {
    // reqwest's Display omits the cause ("error sending request"); the chain says what broke.
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    Error::Transport {
        method: head.method.to_string(),
        target: target(head),
        reason,
        timeout: e.is_timeout(),
    }
}

async fn service_error(head: &RequestHead, response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let request_id = header("x-oss-request-id");
    // HEAD answers carry no body; OSS puts the error document in `x-oss-err`, base64-encoded.
    let err_header = header("x-oss-err");
    let body = if err_header.is_empty() {
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(err_header.trim())
            .unwrap_or_default()
    };
    let parsed = ErrorBody::parse(&body).unwrap_or_default();
    Error::from(ServiceError {
        method: head.method.to_string(),
        status,
        code: parsed.code,
        message: parsed.message,
        request_id: if parsed.request_id.is_empty() {
            request_id
        } else {
            parsed.request_id
        },
        ec: parsed.ec,
        server_time: parsed.server_time,
        bucket: head.bucket.clone().unwrap_or_default(),
        key: head.key.clone(),
    })
}

fn encode_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| {
            let k = utf8_percent_encode(k, QUERY_ENCODE_SET);
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k}={}", utf8_percent_encode(v, QUERY_ENCODE_SET))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_strictly_encoded_in_the_url() {
        let q = vec![
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), "a/b c+&=".to_string()),
            ("acl".to_string(), String::new()),
        ];
        assert_eq!(
            encode_query(&q),
            "list-type=2&prefix=a%2Fb%20c%2B%26%3D&acl"
        );
    }
}
