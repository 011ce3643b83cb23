//! The plain path against a loopback server that answers from a script, byte for byte: body
//! framings, keep-alive reuse, connections the server closes, bodies cut short, garbage.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::http::request::Timeouts;
use crate::memory::destination::Destination;
use crate::ops::get::{GetRequest, Sink};
use crate::ops::range::ByteRange;
use crate::protocol::Target;

/// What the server does with the next request, whichever connection it comes on.
enum Reply {
    /// Writes these bytes and waits for the next request on the same connection.
    Keep(Vec<u8>),
    /// Writes these bytes and closes the connection.
    Close(Vec<u8>),
    /// Writes the answer, then, a moment later, bytes nobody asked for.
    KeepThenJunk(Vec<u8>, Vec<u8>),
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    /// Every request head received, in order.
    heads: Mutex<Vec<String>>,
    connections: AtomicUsize,
}

impl Script {
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn serve(replies: Vec<Reply>) -> (String, Arc<Script>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let script = Arc::new(Script {
        replies: Mutex::new(replies.into()),
        ..Script::default()
    });
    let shared = script.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let script = shared.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut byte = [0u8; 1];
                loop {
                    // Byte by byte: nothing of a later request is read ahead.
                    match socket.read(&mut byte).await {
                        Ok(1) => received.push(byte[0]),
                        _ => return,
                    }
                    if !received.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    let head = String::from_utf8_lossy(&received).into_owned();
                    script.heads.lock().unwrap().push(head);
                    received.clear();
                    let reply = script.replies.lock().unwrap().pop_front();
                    match reply {
                        Some(Reply::Keep(bytes)) => {
                            if socket.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Some(Reply::KeepThenJunk(bytes, junk)) => {
                            let _ = socket.write_all(&bytes).await;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            if socket.write_all(&junk).await.is_err() {
                                return;
                            }
                        }
                        Some(Reply::Close(bytes)) => {
                            let _ = socket.write_all(&bytes).await;
                            return;
                        }
                        None => return,
                    }
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), script)
}

fn client(endpoint: &str, attempts: u32) -> OssClient {
    crate::http::tests::client_with(endpoint, Timeouts::default(), attempts)
}

fn target() -> Target {
    Target {
        scheme: "oss://",
        bucket: "bkt".into(),
        key: "dir/k".into(),
    }
}

async fn get(client: &OssClient, range: Option<ByteRange>) -> Result<Vec<u8>> {
    let target = target();
    let request = GetRequest {
        target: &target,
        range,
        if_match: None,
    };
    let out = client.get(request, Sink::Receive(None)).await?;
    let mut body = vec![0; out.body.len()];
    out.body.copy_to(0, &mut body);
    Ok(body)
}

/// `range` read straight into memory of the caller's (the socket's bytes land there in place).
async fn get_into(client: &OssClient, range: ByteRange) -> Result<Vec<u8>> {
    let target = target();
    let request = GetRequest {
        target: &target,
        range: Some(range),
        if_match: None,
    };
    let mut memory = vec![0u8; usize::try_from(range.len()).unwrap()];
    // SAFETY: `memory` outlives the read, which is awaited here, and nothing else touches it.
    let dst = unsafe { Destination::new(memory.as_mut_ptr(), memory.len()) };
    client.get(request, Sink::Into(dst)).await?;
    Ok(memory)
}

fn ok(body: &[u8], extra: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\netag: \"e1\"\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn a_connection_is_kept_for_the_next_request() {
    let (endpoint, script) = serve(vec![
        Reply::Keep(ok(b"first", "")),
        Reply::Keep(ok(b"second", "")),
    ])
    .await;
    let client = client(&endpoint, 1);
    assert_eq!(get(&client, None).await.unwrap(), b"first");
    assert_eq!(get(&client, None).await.unwrap(), b"second");
    assert_eq!(script.connections.load(Ordering::SeqCst), 1);
    let heads = script.heads();
    assert!(
        heads[0].starts_with("GET /bkt/dir/k HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(heads[0].contains(&format!("host: {}\r\n", &endpoint["http://".len()..])));
    assert!(heads[0].contains("authorization: OSS4-HMAC-SHA256 Credential=ak/"));
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_without_a_retry() {
    // One attempt allowed: the replacement must not count as a retry.
    let (endpoint, script) = serve(vec![
        Reply::Close(ok(b"first", "")),
        Reply::Keep(ok(b"second", "")),
    ])
    .await;
    let client = client(&endpoint, 1);
    assert_eq!(get(&client, None).await.unwrap(), b"first");
    // Let the close reach our side of the idle connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&client, None).await.unwrap(), b"second");
    assert_eq!(script.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bytes_arriving_on_an_idle_connection_are_never_taken_for_an_answer() {
    let junk = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nWRONG".to_vec();
    let (endpoint, script) = serve(vec![
        Reply::KeepThenJunk(ok(b"first", ""), junk),
        Reply::Keep(ok(b"second", "")),
    ])
    .await;
    let client = client(&endpoint, 1);
    assert_eq!(get(&client, None).await.unwrap(), b"first");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&client, None).await.unwrap(), b"second");
    assert_eq!(script.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_kept_connection_closed_as_the_request_arrives_is_replaced_without_a_retry() {
    // The server takes the second request and closes without a word (its idle timeout
    // racing our request): the request goes again on a new connection, not as a retry.
    let (endpoint, script) = serve(vec![
        Reply::Keep(ok(b"first", "")),
        Reply::Close(Vec::new()),
        Reply::Keep(ok(b"second", "")),
    ])
    .await;
    let client = client(&endpoint, 1);
    assert_eq!(get(&client, None).await.unwrap(), b"first");
    assert_eq!(get(&client, None).await.unwrap(), b"second");
    assert_eq!(script.connections.load(Ordering::SeqCst), 2);
    assert_eq!(script.heads().len(), 3);
}

#[tokio::test]
async fn connection_close_and_http_1_0_are_not_reused() {
    let (endpoint, script) = serve(vec![
        Reply::Keep(ok(b"a", "connection: close\r\n")),
        Reply::Keep(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nb".to_vec()),
        Reply::Keep(ok(b"c", "")),
    ])
    .await;
    let client = client(&endpoint, 1);
    for expected in [b"a", b"b", b"c"] {
        assert_eq!(get(&client, None).await.unwrap(), expected);
    }
    assert_eq!(script.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn chunked_and_close_delimited_bodies_are_read_whole() {
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\ntrailer: 1\r\n\r\n"
        .to_vec();
    let until_close = b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec();
    let (endpoint, script) = serve(vec![
        Reply::Keep(chunked),
        Reply::Keep(ok(b"after chunks", "")),
        Reply::Close(until_close),
    ])
    .await;
    let client = client(&endpoint, 1);
    assert_eq!(get(&client, None).await.unwrap(), b"abcdefg");
    assert_eq!(get(&client, None).await.unwrap(), b"after chunks");
    assert_eq!(get(&client, None).await.unwrap(), b"until the end");
    assert_eq!(script.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_cut_short_is_resumed_from_its_next_byte() {
    let body: Vec<u8> = (0..200u8).collect();
    let mut cut = b"HTTP/1.1 200 OK\r\netag: \"e1\"\r\ncontent-length: 200\r\n\r\n".to_vec();
    cut.extend_from_slice(&body[..120]);
    let mut rest = b"HTTP/1.1 206 Partial Content\r\netag: \"e1\"\r\ncontent-range: bytes 120-199/200\r\ncontent-length: 80\r\n\r\n".to_vec();
    rest.extend_from_slice(&body[120..]);
    let (endpoint, script) = serve(vec![
        Reply::Close(cut.clone()),
        Reply::Keep(rest.clone()),
        Reply::Close(cut),
        Reply::Keep(rest),
    ])
    .await;
    let client = client(&endpoint, 3);
    assert_eq!(get(&client, None).await.unwrap(), body);
    // The same, read in place: what arrived before the cut stays where it landed.
    let whole = ByteRange { start: 0, end: 200 };
    assert_eq!(get_into(&client, whole).await.unwrap(), body);
    let heads = script.heads();
    assert!(
        heads[1].contains("range: bytes=120-199\r\n"),
        "{}",
        heads[1]
    );
    assert!(heads[1].contains("if-match: \"e1\"\r\n"), "{}", heads[1]);
}

#[tokio::test]
async fn a_ranged_body_lands_in_the_callers_memory() {
    let (endpoint, _script) = serve(vec![Reply::Keep(
        b"HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 2-5/10\r\ncontent-length: 4\r\n\r\n2345"
            .to_vec(),
    )])
    .await;
    let client = client(&endpoint, 1);
    assert_eq!(
        get_into(&client, ByteRange { start: 2, end: 6 })
            .await
            .unwrap(),
        b"2345"
    );
}

#[tokio::test]
async fn garbage_instead_of_an_answer_names_what_is_wrong() {
    let (endpoint, _script) =
        serve(vec![Reply::Close(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())]).await;
    let client = client(&endpoint, 1);
    let error = get(&client, None).await.expect_err("garbage");
    let text = error.to_string();
    assert!(matches!(error, Error::Transport { .. }), "{text}");
    assert!(
        text.contains("malformed answer head") && text.contains("oss://bkt/dir/k"),
        "{text}"
    );
}

#[tokio::test]
async fn an_error_answer_is_decoded_and_the_connection_kept() {
    let xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message>\
               <RequestId>RID1</RequestId></Error>";
    let error = format!(
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{xml}",
        xml.len()
    );
    let (endpoint, script) = serve(vec![
        Reply::Keep(error.into_bytes()),
        Reply::Keep(ok(b"x", "")),
    ])
    .await;
    let client = client(&endpoint, 1);
    let e = get(&client, None).await.expect_err("404");
    let s = e.service().expect("a service error");
    assert_eq!(
        (s.status, s.code.as_str(), s.request_id.as_str()),
        (404, "NoSuchKey", "RID1")
    );
    assert_eq!(get(&client, None).await.unwrap(), b"x");
    assert_eq!(script.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn proxies_https_and_the_opt_out_keep_requests_on_reqwest() {
    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }
    assert!(super::takes("http", env(&[])));
    assert!(!super::takes("https", env(&[])));
    assert!(!super::takes(
        "http",
        env(&[("HTTP_PROXY", "http://proxy:3128")])
    ));
    assert!(!super::takes(
        "http",
        env(&[("all_proxy", "socks5://p:1080")])
    ));
    assert!(
        super::takes("http", env(&[("http_proxy", " ")])),
        "empty means none"
    );
    assert!(
        super::takes("http", env(&[("HTTPS_PROXY", "http://p:1")])),
        "https only"
    );
    assert!(!super::takes(
        "http",
        env(&[("OSSTORCHCONNECTOR_HTTP", "reqwest")])
    ));
}
