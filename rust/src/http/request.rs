//! A request as an operation describes it: what is signed (the head), what is sent after it
//! (the body), and whether sending it twice is harmless.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::sync::Notify;

use crate::sign::RequestHead;

/// One request of an operation, sent (and signed) again for every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Method, bucket, key, query and headers: what the signature covers.
    pub(crate) head: RequestHead,
    /// Bytes sent after the head; `None` for requests without a body.
    pub(crate) body: Option<Bytes>,
    /// Whether the server ends in the same state however many times it receives this request.
    /// A request that is not is sent again after a transport error only when that error
    /// proves nothing reached the server (connecting failed).
    pub(crate) idempotent: bool,
}

impl Request {
    /// A request without a body; idempotent unless the method is POST (HTTP's own rule).
    pub(crate) fn new(method: Method, bucket: &str, key: &str) -> Self {
        let idempotent = method != Method::POST;
        Request {
            head: RequestHead::new(method, bucket, key),
            body: None,
            idempotent,
        }
    }

    /// The same request carrying `body`.
    pub(crate) fn with_body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }

    /// The same request marked as not idempotent (or idempotent).
    pub(crate) fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }
}

/// How long each phase of an attempt may take. Separate phases, so a large upload is bounded
/// by its progress rather than cut by a deadline meant for the wait for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Opening a connection.
    pub(crate) connect: Duration,
    /// From the end of the request (its last body byte handed to the socket) to the answer's
    /// headers.
    pub(crate) first_byte: Duration,
    /// Between two pieces of a body, in either direction.
    pub(crate) between_bytes: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            between_bytes: Duration::from_secs(30),
        }
    }
}

/// Pieces a request body is handed to the HTTP stack in: each piece handed over is progress.
const UPLOAD_PIECE: usize = 256 * 1024;

/// How far the sending of a request body has got, as the HTTP stack takes its pieces.
#[derive(Debug, Default)]
pub(crate) struct UploadProgress {
    done: AtomicBool,
    progressed: Notify,
}

impl UploadProgress {
    /// Resolves once the whole body has been taken by the HTTP stack; fails when no piece was
    /// taken for `stall` (the server stopped reading).
    pub(crate) async fn sent(&self, stall: Duration) -> Result<(), ()> {
        loop {
            let progressed = self.progressed.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if self.done.load(Ordering::Acquire) {
                return Ok(());
            }
            if tokio::time::timeout(stall, progressed).await.is_err() {
                return Err(());
            }
        }
    }

    fn took_piece(&self, last: bool) {
        if last {
            self.done.store(true, Ordering::Release);
        }
        self.progressed.notify_waiters();
    }
}

/// `body` as a reqwest body handed over in pieces (slices of the same memory, no copy), each
/// reported to the returned progress.
pub(crate) fn streamed_body(body: Bytes) -> (reqwest::Body, Arc<UploadProgress>) {
    let progress = Arc::new(UploadProgress::default());
    if body.is_empty() {
        progress.took_piece(true);
        return (reqwest::Body::from(body), progress);
    }
    let pieces = reported_pieces(body, progress.clone()).map(Ok::<Bytes, std::io::Error>);
    (
        reqwest::Body::wrap_stream(futures::stream::iter(pieces)),
        progress,
    )
}

/// `body` in pieces of [`UPLOAD_PIECE`], each reported to `progress` as it is taken.
fn reported_pieces(body: Bytes, progress: Arc<UploadProgress>) -> impl Iterator<Item = Bytes> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let piece = rest.split_to(rest.len().min(UPLOAD_PIECE));
        progress.took_piece(rest.is_empty());
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_is_the_one_method_not_idempotent_by_default() {
        assert!(Request::new(Method::GET, "b", "k").idempotent);
        assert!(Request::new(Method::PUT, "b", "k").idempotent);
        assert!(Request::new(Method::DELETE, "b", "k").idempotent);
        assert!(!Request::new(Method::POST, "b", "k").idempotent);
        assert!(
            !Request::new(Method::PUT, "b", "k")
                .idempotent(false)
                .idempotent
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_body_is_sent_when_its_last_piece_is_taken_and_stalls_are_noticed() {
        let body = Bytes::from(vec![7u8; UPLOAD_PIECE * 2 + 1]);
        let progress = Arc::new(UploadProgress::default());
        let mut pieces = reported_pieces(body, progress.clone());
        assert_eq!(pieces.next().map(|p| p.len()), Some(UPLOAD_PIECE));
        // Nothing more is taken: the wait gives up after the stall time, not before.
        let stall = Duration::from_secs(5);
        let started = tokio::time::Instant::now();
        assert!(progress.sent(stall).await.is_err());
        assert_eq!(started.elapsed(), stall);
        assert_eq!(pieces.next().map(|p| p.len()), Some(UPLOAD_PIECE));
        assert_eq!(pieces.next().map(|p| p.len()), Some(1));
        assert!(progress.sent(stall).await.is_ok());
        assert!(pieces.next().is_none());
    }
}
