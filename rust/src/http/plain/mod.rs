//! Our own HTTP/1.1 client for bodiless requests (GET, HEAD) to `http://` endpoints — OSS
//! internal endpoints and local S3 stores are plain HTTP, and that is where the bytes per
//! second matter most.
//!
//! Why not hyper: hyper reads the socket into its own buffer and hands out slices of it, so a
//! body Python wants in one `bytes` is copied once more, and every request pays reqwest's
//! per-request tail (URL re-parse, header maps, boxed futures). Here the answer head is read
//! into a small per-connection buffer and the body straight from the socket into wherever it
//! is going ([`PlainBody::read_into`]: lent `bytes`, a part buffer, the caller's memory).
//!
//! Anything this path does not take (HTTPS, request bodies, a proxy in the environment,
//! `OSSTORCHCONNECTOR_HTTP=reqwest`) goes through reqwest, in `http/client.rs`.

mod wire;

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub(crate) use wire::Framing;
use wire::{Chunked, Decoded};

/// An idle connection older than this is closed rather than reused: servers close theirs
/// after some idle time, and a request sent as they do fails.
const IDLE_FOR_AT_MOST: Duration = Duration::from_secs(30);

/// Bytes asked of the socket per read while the answer head is incomplete: small, because the
/// body bytes that come with the head are copied out of this buffer.
const HEAD_READ: usize = 4096;

/// An answer head may be at most this long.
const MAX_HEAD: usize = 64 * 1024;

/// A body read piece by piece (not into the caller's memory) gets buffers of at most this.
const MAX_PIECE: usize = 1 << 20;

/// Why a request on the plain path failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: String,
    /// Nothing was sent (connecting failed): safe to send again whatever the request.
    pub(crate) connecting: bool,
    pub(crate) timeout: bool,
}

impl Failure {
    fn io(doing: &str, e: &io::Error) -> Self {
        Failure {
            reason: format!("{doing}: {e}"),
            connecting: false,
            timeout: e.kind() == io::ErrorKind::TimedOut,
        }
    }
}

/// Whether requests to `scheme://` should take the plain path.
pub(crate) fn takes(scheme: &str, env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    // A proxy applies to plain HTTP: reqwest honours these (and NO_PROXY), this path does not.
    let proxied = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|name| set(name));
    scheme == "http"
        && !proxied
        && !env("OSSTORCHCONNECTOR_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("reqwest"))
}

/// Keep-alive connections per `host:port`, most recently used first out.
#[derive(Debug)]
pub(crate) struct PlainHttp {
    idle: Arc<Idle>,
    connect_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    by_authority: Mutex<HashMap<String, Vec<(Connection, Instant)>>>,
    max_per_authority: usize,
}

impl Idle {
    fn take(&self, authority: &str) -> Option<Connection> {
        let mut idle = self.by_authority.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(authority)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < IDLE_FOR_AT_MOST && conn.quiet() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.by_authority.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(conn.authority.clone()).or_default();
        if list.len() >= self.max_per_authority {
            list.remove(0);
        }
        list.push((conn, Instant::now()));
    }
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    authority: String,
    /// Bytes read and not yet consumed: the rest of a head's read, the start of a body.
    buf: BytesMut,
    /// The request head being written (kept for its allocation).
    out: Vec<u8>,
}

impl Connection {
    /// Nothing has arrived since its last answer: neither the server's close nor bytes it
    /// should not have sent, which the next request would otherwise take for its answer.
    fn quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// An answer whose head has been read.
#[derive(Debug)]
pub(crate) struct PlainAnswer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: PlainBody,
}

/// Where a request goes: the parts of its URL the wire needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Address<'a> {
    /// Host as a URL writes it (IPv6 in brackets).
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    /// `host` or `host:port`, as the Host header says it.
    pub(crate) authority: &'a str,
    /// Path and query, encoded.
    pub(crate) target: &'a str,
}

impl PlainHttp {
    pub(crate) fn new(max_idle_per_authority: usize, connect_timeout: Duration) -> Self {
        PlainHttp {
            idle: Arc::new(Idle {
                by_authority: Mutex::new(HashMap::new()),
                max_per_authority: max_idle_per_authority.max(1),
            }),
            connect_timeout,
        }
    }

    /// Sends a bodiless request and reads the answer's head. A kept-alive connection the server
    /// has meanwhile closed is replaced by a new one, once, as long as nothing was answered.
    ///
    /// # Errors
    /// [`Failure`] saying what broke.
    pub(crate) async fn send(
        &self,
        method: &Method,
        to: Address<'_>,
        headers: &HeaderMap,
    ) -> Result<PlainAnswer, Failure> {
        if let Some(conn) = self.idle.take(to.authority) {
            match self.exchange(conn, method, to, headers).await {
                Ok(answer) => return Ok(answer),
                Err((false, _)) => {} // closed while idle: nothing was answered
                Err((true, failure)) => return Err(failure),
            }
        }
        let conn = self.connect(to).await?;
        self.exchange(conn, method, to, headers)
            .await
            .map_err(|(_, failure)| failure)
    }

    async fn connect(&self, to: Address<'_>) -> Result<Connection, Failure> {
        let host = to.host.trim_start_matches('[').trim_end_matches(']');
        let connecting = TcpStream::connect((host, to.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(Failure {
                    reason: format!("cannot connect to {}: {e}", to.authority),
                    connecting: true,
                    timeout: e.kind() == io::ErrorKind::TimedOut,
                })
            }
            Err(_) => {
                return Err(Failure {
                    reason: format!(
                        "cannot connect to {} within {} ms (connectTimeoutMs)",
                        to.authority,
                        self.connect_timeout.as_millis()
                    ),
                    connecting: true,
                    timeout: true,
                })
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|e| Failure::io("setting TCP_NODELAY", &e))?;
        Ok(Connection {
            stream,
            authority: to.authority.to_string(),
            buf: BytesMut::new(),
            out: Vec::new(),
        })
    }

    /// One request and its answer's head on `conn`. The error says whether any byte of an
    /// answer arrived (if none did on a reused connection, it was closed while idle).
    async fn exchange(
        &self,
        mut conn: Connection,
        method: &Method,
        to: Address<'_>,
        headers: &HeaderMap,
    ) -> Result<PlainAnswer, (bool, Failure)> {
        conn.out.clear();
        wire::write_head(&mut conn.out, method, to.target, to.authority, headers);
        if let Err(e) = conn.stream.write_all(&conn.out).await {
            return Err((false, Failure::io("sending the request", &e)));
        }
        let head = loop {
            match wire::parse_head(&conn.buf, method) {
                Ok(Some(head)) if head.status.is_informational() => conn.buf.advance(head.len),
                Ok(Some(head)) => break head,
                Ok(None) if conn.buf.len() >= MAX_HEAD => {
                    let reason = format!("an answer head longer than {MAX_HEAD} bytes");
                    return Err((true, Failure::io("reading the answer", &invalid(reason))));
                }
                Ok(None) => {}
                Err(reason) => {
                    return Err((true, Failure::io("reading the answer", &invalid(reason))))
                }
            }
            let answered = !conn.buf.is_empty();
            conn.buf.reserve(HEAD_READ);
            match read_buf(&mut conn.stream, &mut (&mut conn.buf).limit(HEAD_READ)).await {
                Ok(0) => {
                    let e = io::Error::from(io::ErrorKind::UnexpectedEof);
                    return Err((answered, Failure::io("reading the answer", &e)));
                }
                Ok(_) => {}
                Err(e) => return Err((answered, Failure::io("reading the answer", &e))),
            }
        };
        conn.buf.advance(head.len);
        let state = match head.framing {
            Framing::Empty => Framing::Length(0),
            framing => framing,
        };
        let mut body = PlainBody {
            conn: Some(conn),
            idle: self.idle.clone(),
            framing: state,
            keep_alive: head.keep_alive,
            chunked: Chunked::default(),
            piece: BytesMut::new(),
        };
        body.release_if_done();
        Ok(PlainAnswer {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

/// An answer's body, read from its connection; the connection goes back to the idle ones
/// once the last byte is read (and is closed if the body is dropped before).
#[derive(Debug)]
pub(crate) struct PlainBody {
    conn: Option<Connection>,
    idle: Arc<Idle>,
    /// What is left: `Length` counts the bytes still to come.
    framing: Framing,
    keep_alive: bool,
    chunked: Chunked,
    /// Memory for pieces read from the socket, handed out as they fill.
    piece: BytesMut,
}

impl PlainBody {
    /// Bytes still to come, when the answer said how many.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The next piece of the body, `None` after its end.
    ///
    /// # Errors
    /// What broke: the connection, or the chunked framing.
    pub(crate) async fn chunk(&mut self) -> io::Result<Option<Bytes>> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        match self.framing {
            Framing::Empty | Framing::Length(0) => Ok(None),
            Framing::Length(left) => {
                let piece = if conn.buf.is_empty() {
                    let left = usize::try_from(left).unwrap_or(usize::MAX);
                    if self.piece.capacity() == 0 {
                        self.piece = BytesMut::with_capacity(left.min(MAX_PIECE));
                    }
                    let limit = left.min(self.piece.capacity());
                    let n = read_buf(&mut conn.stream, &mut (&mut self.piece).limit(limit)).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    self.piece.split().freeze()
                } else {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    conn.buf.split_to(n).freeze()
                };
                self.framing = Framing::Length(left - piece.len() as u64);
                self.release_if_done();
                Ok(Some(piece))
            }
            Framing::Chunked => loop {
                match self.chunked.decode(&mut conn.buf).map_err(invalid)? {
                    Decoded::Data(data) => return Ok(Some(data)),
                    Decoded::Done => {
                        self.framing = Framing::Length(0);
                        self.release_if_done();
                        return Ok(None);
                    }
                    Decoded::More => {
                        conn.buf.reserve(64 * 1024);
                        if read_buf(&mut conn.stream, &mut conn.buf).await? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                }
            },
            Framing::UntilClose => {
                if !conn.buf.is_empty() {
                    return Ok(Some(conn.buf.split().freeze()));
                }
                if self.piece.capacity() == 0 {
                    self.piece = BytesMut::with_capacity(64 * 1024);
                }
                if read_buf(&mut conn.stream, &mut self.piece).await? == 0 {
                    self.conn = None;
                    return Ok(None);
                }
                Ok(Some(self.piece.split().freeze()))
            }
        }
    }

    /// Reads body bytes straight into `dst` (as many as arrive in one read, at most what fits
    /// and what is left); 0 at the body's end. Only for bodies of known length
    /// ([`PlainBody::remaining`]).
    ///
    /// # Errors
    /// What broke; `InvalidInput` for a body without a length.
    pub(crate) async fn read_into(&mut self, dst: &mut impl BufMut) -> io::Result<usize> {
        let Framing::Length(left) = self.framing else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a body without a length read in place",
            ));
        };
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0);
        };
        let want = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(dst.remaining_mut());
        if want == 0 {
            return Ok(0);
        }
        let n = if conn.buf.is_empty() {
            let n = read_buf(&mut conn.stream, &mut dst.limit(want)).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            n
        } else {
            let n = want.min(conn.buf.len());
            dst.put_slice(&conn.buf[..n]);
            conn.buf.advance(n);
            n
        };
        self.framing = Framing::Length(left - n as u64);
        self.release_if_done();
        Ok(n)
    }

    /// After the last byte: the connection goes back to the idle ones if it may carry more.
    fn release_if_done(&mut self) {
        if self.framing != Framing::Length(0) {
            return;
        }
        if let Some(conn) = self.conn.take() {
            // Bytes beyond the body: the server sent something it should not have.
            if self.keep_alive && conn.buf.is_empty() {
                self.idle.put(conn);
            }
        }
    }
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

/// One read of `stream` into `dst`'s spare room (as `tokio::io::AsyncReadExt::read_buf`).
async fn read_buf(stream: &mut TcpStream, dst: &mut impl BufMut) -> io::Result<usize> {
    // SAFETY: ReadBuf only ever writes initialised bytes into the room, never uninitialised
    // ones, and only the `n` bytes the read filled are advanced over below.
    let room = unsafe { dst.chunk_mut().as_uninit_slice_mut() };
    let mut buf = ReadBuf::uninit(room);
    poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf)).await?;
    let n = buf.filled().len();
    // SAFETY: the read initialised the first `n` bytes of the room.
    unsafe { dst.advance_mut(n) };
    Ok(n)
}

#[cfg(test)]
mod tests;
