//! The client and its one request path: sign, send, decode errors, retry, throttle, audit.
//!
//! Every request of every operation goes through [`OssClient::send`]: it is signed here (again
//! for each attempt), retried here (by the rules of [`crate::http::retry`]), and narrowed here
//! while the store throttles ([`crate::http::throttle`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use http::header::CONTENT_LENGTH;
use http::Method;
use percent_encoding::utf8_percent_encode;

use crate::credentials::CredentialCache;
use crate::error::{Error, Result, ServiceError};
use crate::http::answer::Answer;
use crate::http::audit::{AuditLog, AuditRecord};
use crate::http::plain::{self, Address, PlainHttp};
use crate::http::request::{streamed_body, Request, Timeouts};
use crate::http::retry::{classify, Decision, RetryConfig, RetryContext};
use crate::http::throttle::AdaptiveLimit;
use crate::ops::local::LocalStore;
use crate::protocol::endpoint::{Endpoint, QUERY_ENCODE_SET};
use crate::protocol::xml::ErrorBody;
use crate::protocol::{Dialect, Target};
use crate::sign::{RequestHead, Signer};

/// Network settings of a client.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// Retry budget per operation.
    pub(crate) retry: RetryConfig,
    /// How long each phase of an attempt may take.
    pub(crate) timeouts: Timeouts,
    /// Idle connections kept per host; at least the pipeline's concurrency.
    pub(crate) max_idle_connections: usize,
    /// Attempts in flight at most (narrower while throttled).
    pub(crate) max_concurrency: usize,
    /// Where each attempt is recorded, if anywhere.
    pub(crate) audit: Option<Arc<AuditLog>>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            retry: RetryConfig::default(),
            timeouts: Timeouts::default(),
            max_idle_connections: 256,
            max_concurrency: 24,
            audit: None,
        }
    }
}

/// A client bound to one endpoint, protocol dialect, region signer and credential source.
#[derive(Debug)]
pub struct OssClient {
    http: reqwest::Client,
    /// Our own HTTP/1.1 for bodiless requests to an `http://` endpoint (`http::plain`).
    plain: Option<PlainHttp>,
    endpoint: Endpoint,
    dialect: &'static Dialect,
    signer: Arc<dyn Signer>,
    credentials: Arc<CredentialCache>,
    settings: ClientSettings,
    /// Server time minus local time, learnt from clock-skew answers.
    clock_offset_ms: AtomicI64,
    /// Attempts in flight, narrowed while the store throttles.
    limit: AdaptiveLimit,
    /// Local-path mode: reads come from files (`ops::local`), nothing goes over HTTP.
    local: Option<LocalStore>,
}

impl OssClient {
    /// Builds a client. Must run inside the process's runtime when requests are sent.
    ///
    /// # Errors
    /// `Internal` when the TLS/HTTP stack cannot be initialised.
    pub(crate) fn new(
        endpoint: Endpoint,
        dialect: &'static Dialect,
        signer: Arc<dyn Signer>,
        credentials: Arc<CredentialCache>,
        settings: ClientSettings,
    ) -> Result<Self> {
        // No reqwest read timeout: it also runs while a request body is being sent (no answer
        // bytes arrive then), so it would cut long uploads. The phases are timed here instead.
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeouts.connect)
            .pool_max_idle_per_host(settings.max_idle_connections)
            .tcp_nodelay(true)
            .http1_only()
            // OSS answers ranged GETs of compressed objects byte-exact only without this.
            .no_gzip()
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        let plain = plain::takes(&endpoint.scheme, |name| std::env::var(name).ok())
            .then(|| PlainHttp::new(settings.max_idle_connections, settings.timeouts.connect));
        Ok(OssClient {
            http,
            plain,
            endpoint,
            dialect,
            signer,
            credentials,
            clock_offset_ms: AtomicI64::new(0),
            limit: AdaptiveLimit::new(settings.max_concurrency),
            settings,
            local: None,
        })
    }

    /// This client reads files instead (local-path mode, an empty endpoint).
    pub(crate) fn reading_files(mut self, store: LocalStore) -> Self {
        self.local = Some(store);
        self
    }

    /// The files read in local-path mode, if this client is in it.
    pub(crate) fn local_store(&self) -> Option<&LocalStore> {
        self.local.as_ref()
    }

    /// Whether GET bodies are read from the socket straight into their memory (our own HTTP
    /// path), rather than copied there from the HTTP stack's buffers.
    pub(crate) fn reads_in_place(&self) -> bool {
        self.plain.is_some()
    }

    /// How long each phase of an attempt may take.
    pub(crate) fn timeouts(&self) -> Timeouts {
        self.settings.timeouts
    }

    /// The protocol this client speaks.
    pub(crate) fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    /// `bucket`/`key` as this client's requests and messages name them.
    pub(crate) fn target(&self, bucket: &str, key: &str) -> Target {
        Target {
            scheme: self.dialect.scheme,
            bucket: bucket.to_string(),
            key: key.to_string(),
        }
    }

    /// What `head` is for.
    pub(crate) fn target_of(&self, head: &RequestHead) -> Target {
        self.target(head.bucket.as_deref().unwrap_or(""), &head.key)
    }

    /// A fresh retry budget for one operation.
    pub(crate) fn retry_context(&self) -> RetryContext {
        RetryContext::new(self.settings.retry.clone(), self.dialect)
    }

    /// Sends `request` until it succeeds or `ctx` says to give up; returns the successful
    /// response. A request that is not idempotent is sent again only when nothing of it can
    /// have reached the server.
    ///
    /// Each attempt is signed again: the date moves and credentials may have been refreshed.
    ///
    /// # Errors
    /// The last attempt's error: `Service` with the decoded error answer, or `Transport`.
    pub(crate) async fn send(&self, request: &Request, ctx: &mut RetryContext) -> Result<Answer> {
        if self.local.is_some() {
            return Err(Error::invalid(
                "endpoint",
                "",
                format!(
                    "it is empty, which reads local files (/bucket/key) and cannot {} {}; \
                     give an OSS endpoint",
                    request.head.method,
                    self.target_of(&request.head)
                ),
            ));
        }
        loop {
            let error = match self.attempt(request).await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            if !request.idempotent && matches!(error, Error::Transport { sent: true, .. }) {
                return Err(error);
            }
            self.backoff(ctx, &error).await.ok_or(error)?;
        }
    }

    /// Records a failed attempt in `ctx` and sleeps before the next; `None` means give up.
    pub(crate) async fn backoff(&self, ctx: &mut RetryContext, error: &Error) -> Option<()> {
        let delay = ctx.on_failure(error, rand::random::<f64>())?;
        if classify(error, self.dialect) == Decision::RefreshCredentials {
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

    async fn attempt(&self, request: &Request) -> Result<Answer> {
        let _permit = self.limit.acquire().await;
        let started = std::time::Instant::now();
        let result = self.attempt_unlimited(request).await;
        if let Some(audit) = &self.settings.audit {
            self.audit_attempt(audit, &request.head, &result, started.elapsed());
        }
        match &result {
            Ok(_) => self.limit.on_success(),
            Err(Error::Service(e)) if self.dialect.is_throttling(e.status, &e.code) => {
                self.limit.on_throttled(std::time::Instant::now())
            }
            Err(_) => {}
        }
        result
    }

    /// The URL `head` is sent to, query included.
    fn url(&self, head: &RequestHead) -> Result<reqwest::Url> {
        let bucket = head.bucket.as_deref().unwrap_or("");
        let mut url = self.endpoint.url(bucket, &head.key);
        if !head.query.is_empty() {
            url.push('?');
            url.push_str(&encode_query(&head.query));
        }
        reqwest::Url::parse(&url).map_err(|e| Error::Internal(format!("bad URL {url}: {e}")))
    }

    async fn attempt_unlimited(&self, request: &Request) -> Result<Answer> {
        let head = &request.head;
        let credential = self.credentials.get()?;
        // Known before signing: a signature may cover the host and path actually sent.
        let url = self.url(head)?;
        let mut signed = head.clone();
        self.signer
            .sign(&mut signed, &url, &credential, self.now())?;
        let timeouts = self.settings.timeouts;
        let transport = |reason: String, timeout: bool| Error::Transport {
            method: head.method.to_string(),
            target: self.target_of(head),
            reason,
            timeout,
            sent: true,
        };
        let plain = self.plain.as_ref().filter(|_| {
            request.body.is_none() && matches!(signed.method, Method::GET | Method::HEAD)
        });
        let mut upload = None;
        let sending = match plain {
            Some(plain) => {
                let answer = self.send_plain(plain, &url, &signed);
                futures::future::Either::Left(answer)
            }
            None => {
                let mut builder = self
                    .http
                    .request(signed.method.clone(), url.clone())
                    .headers(std::mem::take(&mut signed.headers));
                if let Some(body) = &request.body {
                    let (body, progress) = streamed_body(body.clone());
                    builder = builder.header(CONTENT_LENGTH, body_len(request)).body(body);
                    upload = Some(progress);
                }
                futures::future::Either::Right(async move {
                    builder
                        .send()
                        .await
                        .map(Answer::Reqwest)
                        .map_err(|e| self.transport_error(head, &e))
                })
            }
        };
        // The wait for the answer starts once the body is sent; until then, the body must
        // keep moving.
        let no_answer = async {
            if let Some(progress) = &upload {
                if progress.sent(timeouts.between_bytes).await.is_err() {
                    return transport(
                        format!(
                            "the request body stopped moving for {} ms (readTimeoutMs)",
                            timeouts.between_bytes.as_millis()
                        ),
                        true,
                    );
                }
            }
            tokio::time::sleep(timeouts.first_byte).await;
            transport(
                format!(
                    "no response within {} ms (firstByteTimeoutMs)",
                    timeouts.first_byte.as_millis()
                ),
                true,
            )
        };
        let response = tokio::select! {
            answered = sending => answered?,
            timed_out = no_answer => return Err(timed_out),
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let server_time = response
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok());
        let error = self.service_error(head, response).await;
        if let Some(e) = error
            .service()
            .filter(|e| e.code == self.dialect.clock_skew_code)
        {
            // The error body's ServerTime is the server's own clock; Date may come from a proxy.
            let from_body = DateTime::parse_from_rfc3339(&e.server_time).ok();
            if let Some(t) = from_body.or(server_time) {
                self.learn_clock_offset(t.with_timezone(&Utc));
            }
        }
        Err(error)
    }

    /// A bodiless request on our own HTTP/1.1 path.
    async fn send_plain(
        &self,
        plain: &PlainHttp,
        url: &reqwest::Url,
        signed: &RequestHead,
    ) -> Result<Answer> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let to = Address {
            host,
            port,
            authority: &authority,
            target: &target,
        };
        match plain.send(&signed.method, to, &signed.headers).await {
            Ok(answer) => Ok(Answer::Plain(answer)),
            Err(failure) => Err(Error::Transport {
                method: signed.method.to_string(),
                target: self.target_of(signed),
                reason: failure.reason,
                timeout: failure.timeout,
                sent: !failure.connecting,
            }),
        }
    }

    /// Local time corrected by what the server told us of its clock.
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    fn learn_clock_offset(&self, server_time: DateTime<Utc>) {
        let offset = (server_time - Utc::now()).num_milliseconds();
        log::warn!(
            target: "osstorchconnector",
            "the server's clock is {offset} ms off ours ({}); signing with its time",
            self.dialect.clock_skew_code
        );
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
    }

    fn audit_attempt(
        &self,
        audit: &AuditLog,
        head: &RequestHead,
        result: &Result<Answer>,
        latency: std::time::Duration,
    ) {
        let target = self.target_of(head).to_string();
        let method = head.method.as_str();
        match result {
            Ok(response) => {
                let request_id = response
                    .header(self.dialect.request_id_header)
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
                let (status, reason) = match e.service() {
                    Some(s) => (s.status, s.code.clone()),
                    None => (0, e.to_string()),
                };
                audit.record(&AuditRecord {
                    method,
                    target: &target,
                    status,
                    bytes: 0,
                    latency,
                    request_id: e.request_id(),
                    error: &reason,
                });
            }
        }
    }

    /// A transport failure of `head`'s request, its causes spelled out.
    pub(crate) fn transport_error(&self, head: &RequestHead, e: &reqwest::Error) -> Error {
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
            target: self.target_of(head),
            reason,
            timeout: e.is_timeout(),
            sent: !e.is_connect(),
        }
    }

    async fn service_error(&self, head: &RequestHead, response: Answer) -> Error {
        let status = response.status().as_u16();
        let header = |name: &str| response.header(name).unwrap_or("").to_string();
        let request_id = header(self.dialect.request_id_header);
        // HEAD answers carry no body; OSS puts the error document in a header, base64-encoded.
        let err_header = self.dialect.error_header.map(header).unwrap_or_default();
        let body = if err_header.is_empty() {
            self.body_bytes(head, response).await.unwrap_or_default()
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
            target: self.target_of(head),
        })
    }
}

fn body_len(request: &Request) -> usize {
    request.body.as_ref().map_or(0, Bytes::len)
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
