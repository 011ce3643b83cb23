//! The request path against a loopback server that reads request bodies at a pace the test
//! sets: timeouts per phase, and no blind retry of requests that are not idempotent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::client::{ClientSettings, OssClient};
use super::request::{Request, Timeouts};
use crate::credentials::{Credential, CredentialCache, ProvideCredential};
use crate::error::{Error, Result};
use crate::protocol::endpoint::Endpoint;
use crate::protocol::OSS;
use crate::sign::OssV4Signer;

#[derive(Debug)]
struct Fixed;

impl ProvideCredential for Fixed {
    fn provide_credential(&self) -> Result<Option<Credential>> {
        Ok(Some(Credential {
            access_key_id: "ak".into(),
            access_key_secret: "sk".into(),
            security_token: None,
            expiration: None,
        }))
    }

    fn describe(&self) -> String {
        "fixed test credentials".into()
    }
}

/// How the server treats each request.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Bytes read from the body per step, and the pause after each.
    piece: usize,
    pause: Duration,
    /// Whether to answer at all once the body is read.
    answer: bool,
}

/// Serves every connection with `pace`; counts the requests whose head arrived.
async fn serve(pace: Pace) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = heads.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let mut piece = vec![0u8; pace.piece.max(1)];
                let mut left = length;
                while left > 0 {
                    let want = left.min(piece.len());
                    if reader.read_exact(&mut piece[..want]).await.is_err() {
                        return;
                    }
                    left -= want;
                    tokio::time::sleep(pace.pause).await;
                }
                if pace.answer {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    let _ = reader.get_mut().write_all(answer).await;
                } else {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), heads)
}

fn client(endpoint: &str, timeouts: Timeouts) -> OssClient {
    client_with(endpoint, timeouts, 3)
}

/// An OSS V4 client of `endpoint` (path style) with fixed keys, retrying quickly.
pub(super) fn client_with(endpoint: &str, timeouts: Timeouts, attempts: u32) -> OssClient {
    let settings = ClientSettings {
        timeouts,
        retry: crate::http::retry::RetryConfig {
            max_attempts: attempts,
            base_delay: Duration::from_millis(1),
            ..Default::default()
        },
        ..ClientSettings::default()
    };
    OssClient::new(
        Endpoint::parse(endpoint, Some(true)).expect("endpoint"),
        &OSS,
        Arc::new(OssV4Signer::new("cn-hangzhou")),
        Arc::new(CredentialCache::new(Box::new(Fixed))),
        settings,
    )
    .expect("client")
}

fn put(body: Bytes) -> Request {
    Request::new(Method::PUT, "bkt", "key").with_body(body)
}

fn timeouts(first_byte_ms: u64, between_ms: u64) -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        first_byte: Duration::from_millis(first_byte_ms),
        between_bytes: Duration::from_millis(between_ms),
    }
}

#[tokio::test]
async fn a_slow_upload_that_keeps_moving_outlives_the_first_byte_timeout() {
    // 128 MiB read at 4 MiB per 50 ms: ~1.6 s of sending against a 700 ms first-byte timeout.
    // (What the socket buffers hold when the last piece is handed over, up to ~10 MiB on
    // loopback, drains in ~130 ms at this pace; a CI run on a busy machine once took over
    // 400 ms, so the timeout leaves room for that.)
    let pace = Pace {
        piece: 4 << 20,
        pause: Duration::from_millis(50),
        answer: true,
    };
    let (endpoint, heads) = serve(pace).await;
    let client = client(&endpoint, timeouts(700, 2_000));
    let mut ctx = client.retry_context();
    let body = Bytes::from(vec![1u8; 128 << 20]);
    let started = std::time::Instant::now();
    let response = client.send(&put(body), &mut ctx).await;
    assert!(response.is_ok(), "{:?}", response.err());
    assert!(started.elapsed() > Duration::from_millis(1_200));
    assert_eq!(heads.load(Ordering::SeqCst), 1, "one attempt");
}

#[tokio::test]
async fn the_first_byte_timeout_counts_from_the_end_of_the_body() {
    let pace = Pace {
        piece: 1 << 20,
        pause: Duration::ZERO,
        answer: false,
    };
    let (endpoint, heads) = serve(pace).await;
    let client = client(&endpoint, timeouts(200, 2_000));
    let mut ctx = client.retry_context();
    let request = put(Bytes::from_static(b"small body"));
    let error = client
        .send(&request, &mut ctx)
        .await
        .expect_err("no answer");
    let text = error.to_string();
    assert!(text.contains("firstByteTimeoutMs"), "{text}");
    assert!(matches!(error, Error::Transport { timeout: true, .. }));
    assert_eq!(
        heads.load(Ordering::SeqCst),
        3,
        "idempotent: every attempt made"
    );
}

#[tokio::test]
async fn a_stalled_upload_fails_and_is_not_sent_again_when_not_idempotent() {
    // The server takes one byte per second: the body (far larger than the socket buffers)
    // stops moving.
    let pace = Pace {
        piece: 1,
        pause: Duration::from_secs(1),
        answer: true,
    };
    let (endpoint, heads) = serve(pace).await;
    let client = client(&endpoint, timeouts(5_000, 300));
    let mut ctx = client.retry_context();
    let body = Bytes::from(vec![2u8; 64 << 20]);
    let request = Request::new(Method::POST, "bkt", "key").with_body(body);
    assert!(!request.idempotent);
    let error = client.send(&request, &mut ctx).await.expect_err("stalled");
    let text = error.to_string();
    assert!(text.contains("stopped moving"), "{text}");
    assert!(text.contains("oss://bkt/key"), "{text}");
    assert!(matches!(error, Error::Transport { sent: true, .. }));
    assert_eq!(heads.load(Ordering::SeqCst), 1, "a POST is not sent twice");
}
