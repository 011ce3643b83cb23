//! An in-process stand-in for OSS that the pipeline tests steer: it serves generated objects
//! (`GET /bucket/key`, whole or by `Range`), honours `If-Match`, lets a test replace an object,
//! hold or refuse (503) the requests of a key from some offset on, and records what it saw.
//!
//! It runs on its own runtime, so it keeps answering whatever the client's runtime is doing.
//! Bodies are sent with a plain HTTP/1.1 keep-alive loop; the signature is not checked.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use _core::internals::crc64;

/// How long [`TestServer::wait_until`] waits before it fails the test.
const WAIT: Duration = Duration::from_secs(5);

/// One version of an object.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its bytes.
    pub content: Bytes,
    /// Its ETag, quoted as OSS sends it.
    pub etag: String,
    generation: u64,
}

/// A barrier for held requests: they wait until it is opened (or their client goes away).
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    fn closed() -> Self {
        Gate(Arc::new(watch::Sender::new(false)))
    }

    /// Lets every request held here, now and later, through.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn opened(&self) {
        let mut open = self.0.subscribe();
        // The sender lives in `self`: the wait cannot fail.
        let _ = open.wait_for(|open| *open).await;
    }
}

/// What the server does with the requests of one key from one offset on.
#[derive(Debug, Clone)]
enum Action {
    Hold(Gate),
    Unavailable,
}

#[derive(Debug)]
struct Rule {
    key: String,
    /// The rule covers requests whose first byte is at or after this offset.
    from: u64,
    action: Action,
}

/// A request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The object's key.
    pub key: String,
    /// `Range: bytes=a-b` as `(a, Some(b))`, `bytes=a-` as `(a, None)`.
    pub range: Option<(u64, Option<u64>)>,
    /// The `If-Match` header.
    pub if_match: Option<String>,
}

impl Seen {
    /// The first byte asked for.
    pub fn start(&self) -> u64 {
        self.range.map_or(0, |(start, _)| start)
    }
}

/// An answer sent in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The request it answered.
    pub request: Seen,
    /// Its HTTP status.
    pub status: u16,
    /// The request id it carried (header and, for errors, the XML body).
    pub request_id: String,
}

/// Everything the server saw, in order.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests, as they arrived.
    pub requests: Vec<Seen>,
    /// Answers sent in full, as they completed.
    pub answers: Vec<Answer>,
    /// Requests whose client went away before their answer was complete.
    pub dropped: Vec<Seen>,
    /// Requests arrived and not yet answered in full nor dropped.
    pub in_flight: usize,
    /// The most there ever were.
    pub max_in_flight: usize,
}

impl Stats {
    /// Whether a request for `key` from `start` arrived.
    pub fn requested(&self, key: &str, start: u64) -> bool {
        self.requests
            .iter()
            .any(|r| r.key == key && r.start() == start)
    }

    /// Whether a request for `key` from `start` was answered with `status`.
    pub fn answered(&self, key: &str, start: u64, status: u16) -> bool {
        self.answers
            .iter()
            .any(|a| a.request.key == key && a.request.start() == start && a.status == status)
    }

    /// Whether a request for `key` from `start` was given up by its client.
    pub fn was_dropped(&self, key: &str, start: u64) -> bool {
        self.dropped
            .iter()
            .any(|r| r.key == key && r.start() == start)
    }

    /// The requests for `key`, as they arrived.
    pub fn requests_for(&self, key: &str) -> Vec<&Seen> {
        self.requests.iter().filter(|r| r.key == key).collect()
    }
}

#[derive(Debug)]
struct Shared {
    objects: Mutex<HashMap<String, Object>>,
    rules: Mutex<Vec<Rule>>,
    stats: watch::Sender<Stats>,
    honour_if_match: AtomicBool,
    request_ids: AtomicU64,
}

/// The server, running until dropped.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    shared: Arc<Shared>,
    /// Runs the server; dropping it stops the server.
    _runtime: Runtime,
}

impl TestServer {
    /// Starts a server with no objects on a free port.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the test server");
        let port = listener.local_addr().expect("server address").port();
        let shared = Arc::new(Shared {
            objects: Mutex::new(HashMap::new()),
            rules: Mutex::new(Vec::new()),
            stats: watch::Sender::new(Stats::default()),
            honour_if_match: AtomicBool::new(true),
            request_ids: AtomicU64::new(0),
        });
        runtime.spawn(accept(listener, shared.clone()));
        TestServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
            _runtime: runtime,
        }
    }

    /// Creates object `key` of `size` generated bytes.
    pub fn put(&self, key: &str, size: usize) -> Object {
        let object = generate(key, 0, size);
        lock(&self.shared.objects).insert(key.to_string(), object.clone());
        object
    }

    /// Replaces object `key` by a new version of the same size, with other bytes and ETag.
    pub fn replace(&self, key: &str) -> Object {
        let mut objects = lock(&self.shared.objects);
        let old = objects
            .get(key)
            .expect("only an existing object is replaced");
        let object = generate(key, old.generation + 1, old.content.len());
        objects.insert(key.to_string(), object.clone());
        object
    }

    /// Holds the requests of `key` starting at or after byte `from` (the rule with the
    /// largest `from` applies) until the returned gate opens.
    pub fn hold(&self, key: &str, from: u64) -> Gate {
        let gate = Gate::closed();
        self.add_rule(key, from, Action::Hold(gate.clone()));
        gate
    }

    /// Answers the requests of `key` starting at or after byte `from` with 503, for ever.
    pub fn unavailable(&self, key: &str, from: u64) {
        self.add_rule(key, from, Action::Unavailable);
    }

    /// Serves the current version whatever `If-Match` says, as a server that ignores it would.
    pub fn ignore_if_match(&self) {
        self.shared.honour_if_match.store(false, Ordering::Relaxed);
    }

    /// What the server has seen so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats.borrow().clone()
    }

    /// Waits until `ready` holds for what the server has seen; fails the test after [`WAIT`].
    pub async fn wait_until(&self, what: &str, ready: impl FnMut(&Stats) -> bool) {
        let mut stats = self.shared.stats.subscribe();
        let waited = tokio::time::timeout(WAIT, async {
            // The sender lives in `self`: the wait cannot fail.
            let _ = stats.wait_for(ready).await;
        })
        .await;
        if waited.is_err() {
            panic!(
                "timed out waiting until {what}; the server saw {:#?}",
                self.stats()
            );
        }
    }

    fn add_rule(&self, key: &str, from: u64, action: Action) {
        lock(&self.shared.rules).push(Rule {
            key: key.to_string(),
            from,
            action,
        });
    }
}

impl Shared {
    /// The rule for a request of `key` from `start`: the one with the largest `from` covering it.
    fn rule_for(&self, key: &str, start: u64) -> Option<Action> {
        lock(&self.rules)
            .iter()
            .filter(|r| r.key == key && r.from <= start)
            .max_by_key(|r| r.from)
            .map(|r| r.action.clone())
    }

    fn request_id(&self) -> String {
        format!(
            "test-request-{:06}",
            self.request_ids.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Records an arrival; the returned guard records how the request ended.
    fn arrive(&self, request: &Seen) -> InFlight<'_> {
        self.stats.send_modify(|s| {
            s.requests.push(request.clone());
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        });
        InFlight {
            shared: self,
            request: request.clone(),
            answered: false,
        }
    }
}

/// A request from its arrival until it is answered in full or its client goes away.
struct InFlight<'a> {
    shared: &'a Shared,
    request: Seen,
    answered: bool,
}

impl InFlight<'_> {
    fn answered(mut self, status: u16, request_id: &str) {
        self.answered = true;
        let answer = Answer {
            request: self.request.clone(),
            status,
            request_id: request_id.to_string(),
        };
        self.shared.stats.send_modify(|s| s.answers.push(answer));
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let answered = self.answered;
        let request = &self.request;
        self.shared.stats.send_modify(|s| {
            s.in_flight -= 1;
            if !answered {
                s.dropped.push(request.clone());
            }
        });
    }
}

/// An answer to send.
struct Reply {
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    request_id: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An object's bytes: a function of its key, its version and the offset.
fn generate(key: &str, generation: u64, size: usize) -> Object {
    let seed = key.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    }) ^ generation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut content = Vec::with_capacity(size + 8);
    let mut word = 0u64;
    while content.len() < size {
        content.extend_from_slice(&splitmix64(seed.wrapping_add(word)).to_le_bytes());
        word += 1;
    }
    content.truncate(size);
    let etag = format!("\"{:016X}{generation:04}\"", crc64(&content));
    Object {
        content: Bytes::from(content),
        etag,
        generation,
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        tokio::spawn(connection(socket, shared.clone()));
    }
}

/// Serves the requests of one keep-alive connection until the client closes it.
async fn connection(socket: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    while let Some(request) = read_request(&mut read).await? {
        let in_flight = shared.arrive(&request);
        let Some(reply) = respond(&shared, &request, &mut read).await else {
            return Ok(()); // The client gave up while the request was held.
        };
        send(&mut write, reply, in_flight).await?;
    }
    Ok(())
}

/// Reads one request head; `None` when the client closed the connection.
async fn read_request(read: &mut BufReader<OwnedReadHalf>) -> io::Result<Option<Seen>> {
    let mut request = Seen {
        key: String::new(),
        range: None,
        if_match: None,
    };
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(Some(request));
        }
        if first {
            first = false;
            // `GET /bucket/key HTTP/1.1`: the key is what follows the bucket.
            let path = line.split(' ').nth(1).unwrap_or("");
            request.key = path.splitn(3, '/').nth(2).unwrap_or("").to_string();
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "range" => request.range = parse_range(value),
            "if-match" => request.if_match = Some(value.to_string()),
            _ => {}
        }
    }
}

/// `bytes=a-b` or `bytes=a-`.
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let end = if end.is_empty() {
        None
    } else {
        Some(end.parse().ok()?)
    };
    Some((start.parse().ok()?, end))
}

/// The answer to `request` after its rule has had its way; `None` when the client went away
/// while the request was held.
async fn respond(
    shared: &Shared,
    request: &Seen,
    read: &mut BufReader<OwnedReadHalf>,
) -> Option<Reply> {
    match shared.rule_for(&request.key, request.start()) {
        Some(Action::Hold(gate)) => {
            tokio::select! {
                _ = gate.opened() => {}
                _ = client_gone(read) => return None,
            }
        }
        Some(Action::Unavailable) => {
            return Some(error_reply(
                shared,
                503,
                "ServiceUnavailable",
                "Please reduce your request rate.",
            ));
        }
        None => {}
    }
    Some(serve_object(shared, request))
}

/// Resolves when the client closes the connection (it sends nothing else while it waits).
async fn client_gone(read: &mut BufReader<OwnedReadHalf>) {
    if matches!(read.fill_buf().await, Ok(bytes) if !bytes.is_empty()) {
        // An unexpected pipelined request: not a departure.
        std::future::pending::<()>().await;
    }
}

/// The object's current version, whole (200) or the range asked for (206).
fn serve_object(shared: &Shared, request: &Seen) -> Reply {
    let Some(object) = lock(&shared.objects).get(&request.key).cloned() else {
        return error_reply(
            shared,
            404,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let honour = shared.honour_if_match.load(Ordering::Relaxed);
    if honour && request.if_match.as_ref().is_some_and(|e| *e != object.etag) {
        return error_reply(
            shared,
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold.",
        );
    }
    let size = object.content.len() as u64;
    let mut headers = vec![("ETag", object.etag.clone())];
    let Some((start, end)) = request.range else {
        headers.push(("x-oss-hash-crc64ecma", crc64(&object.content).to_string()));
        return reply(shared, 200, "OK", headers, object.content);
    };
    if start >= size {
        return error_reply(
            shared,
            416,
            "InvalidRange",
            "The requested range cannot be satisfied.",
        );
    }
    let end = end.unwrap_or(u64::MAX).min(size - 1);
    headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
    let body = object.content.slice(start as usize..=end as usize);
    reply(shared, 206, "Partial Content", headers, body)
}

fn error_reply(shared: &Shared, status: u16, code: &str, message: &str) -> Reply {
    let request_id = shared.request_id();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>{request_id}</RequestId>\
         <HostId>127.0.0.1</HostId></Error>"
    );
    let reason = match status {
        404 => "Not Found",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        _ => "Service Unavailable",
    };
    Reply {
        status,
        reason,
        headers: vec![("Content-Type", "application/xml".to_string())],
        body: Bytes::from(body),
        request_id,
    }
}

fn reply(
    shared: &Shared,
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
) -> Reply {
    Reply {
        status,
        reason,
        headers,
        body,
        request_id: shared.request_id(),
    }
}

/// Sends `reply`. The request stops counting as in flight just before the last byte goes out,
/// so the client can never have a whole answer that the server still counts.
async fn send(write: &mut OwnedWriteHalf, reply: Reply, in_flight: InFlight<'_>) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nx-oss-request-id: {}\r\n",
        reply.status,
        reply.reason,
        reply.body.len(),
        reply.request_id
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&reply.body);
    let (most, last) = bytes.split_at(bytes.len() - 1);
    write.write_all(most).await?;
    in_flight.answered(reply.status, &reply.request_id);
    write.write_all(last).await
}
