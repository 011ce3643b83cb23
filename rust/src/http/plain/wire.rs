//! HTTP/1.1 as the plain path speaks it, without IO: the request head written out, the answer
//! head parsed, and how the answer's body is delimited (RFC 9112 §6), chunked bodies decoded.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// Headers an answer head may have, at most; more is refused rather than parsed slowly.
const MAX_HEADERS: usize = 128;

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A parsed answer head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// The connection may carry another request once this body is read.
    pub(crate) keep_alive: bool,
    /// Bytes of the head, blank line included.
    pub(crate) len: usize,
}

/// Appends `method target HTTP/1.1`, `Host` (unless `headers` has one) and `headers`.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    host: &str,
    headers: &HeaderMap,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // `HeaderValue` holds no CR or LF, so no value can end the head early.
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The answer head at the start of `buf`, `None` while it is incomplete. Interim (1xx) heads
/// are not returned: the caller drops `len` bytes and parses again.
///
/// # Errors
/// What is malformed, when the bytes are not an HTTP/1.x answer head this path accepts.
pub(crate) fn parse_head(buf: &[u8], method: &Method) -> Result<Option<Head>, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed answer head: {e}")),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| format!("answer with status {code}"))?;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("answer header name {:?}", h.name))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| format!("answer header {name} has a value HTTP does not allow"))?;
        headers.append(name, value);
    }
    let http10 = parsed.version == Some(0);
    let framing = framing(status, method, &headers)?;
    let connection = |token: &str| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let keep_alive = framing != Framing::UntilClose
        && !connection("close")
        && (!http10 || connection("keep-alive"));
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
        len,
    }))
}

fn framing(status: StatusCode, method: &Method, headers: &HeaderMap) -> Result<Framing, String> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(last) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        let chunked = last
            .to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let n = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("answer with Content-Length {value:?}"))?;
        if length.is_some_and(|l| l != n) {
            return Err("answer with two different Content-Lengths".into());
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// What the chunked decoder found in its input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The input ended inside the framing: more is needed.
    More,
    /// The last chunk and the trailers are done.
    Done,
}

/// A `Transfer-Encoding: chunked` body, decoded as its bytes arrive.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: State,
    /// The chunk size being read.
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    #[default]
    Size,
    /// After the size: extensions or spaces up to the line's end.
    Extension,
    SizeLf,
    /// Bytes of the current chunk still to come.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    EndLf,
    Done,
}

impl Chunked {
    /// Decodes from the front of `input`, taking what it uses: body bytes come back as a slice
    /// of `input`'s memory, framing is consumed.
    ///
    /// # Errors
    /// What is malformed.
    pub(crate) fn decode(&mut self, input: &mut BytesMut) -> Result<Decoded, String> {
        loop {
            if let State::Data(left) = self.state {
                if left == 0 {
                    self.state = State::DataCr;
                    continue;
                }
                if input.is_empty() {
                    return Ok(Decoded::More);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                self.state = State::Data(left - n as u64);
                return Ok(Decoded::Data(input.split_to(n).freeze()));
            }
            if self.state == State::Done {
                return Ok(Decoded::Done);
            }
            let Some(&byte) = input.first() else {
                return Ok(Decoded::More);
            };
            input.advance(1);
            self.state = match (self.state, byte) {
                (State::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                    self.size = self
                        .size
                        .checked_mul(16)
                        .map(|s| s + digit)
                        .ok_or("a chunk size beyond 2^64")?;
                    State::Size
                }
                (State::Size | State::Extension, b'\r') => State::SizeLf,
                (State::Size | State::Extension, b';' | b' ' | b'\t') => State::Extension,
                (State::Extension, _) => State::Extension,
                (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data(std::mem::take(&mut self.size)),
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size,
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::TrailerStart | State::Trailer, b'\n') => State::TrailerStart,
                (State::TrailerStart | State::Trailer, _) => State::Trailer,
                (State::EndLf, b'\n') => State::Done,
                (state, byte) => {
                    return Err(format!(
                        "malformed chunked body: byte {byte:#04x} in state {state:?}"
                    ))
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &Method) -> Head {
        parse_head(text.as_bytes(), method)
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn the_request_head_names_the_host_once() {
        let mut headers = HeaderMap::new();
        headers.insert("range", HeaderValue::from_static("bytes=0-9"));
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Method::GET,
            "/b/k%20x?a=1",
            "127.0.0.1:9000",
            &headers,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /b/k%20x?a=1 HTTP/1.1\r\nhost: 127.0.0.1:9000\r\nrange: bytes=0-9\r\n\r\n"
        );
        headers.insert(HOST, HeaderValue::from_static("b.example"));
        let mut out = Vec::new();
        write_head(&mut out, &Method::GET, "/k", "ignored", &headers);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /k HTTP/1.1\r\nrange: bytes=0-9\r\nhost: b.example\r\n\r\n"
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let h = head(ok, &Method::GET);
        assert_eq!(
            (h.framing, h.keep_alive, h.len),
            (Framing::Length(5), true, ok.len() - 5)
        );
        assert_eq!(head(ok, &Method::HEAD).framing, Framing::Empty);
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(head(chunked, &Method::GET).framing, Framing::Chunked);
        let closing =
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n";
        assert!(!head(closing, &Method::GET).keep_alive);
        let unframed = head("HTTP/1.1 200 OK\r\n\r\n", &Method::GET);
        assert_eq!(
            (unframed.framing, unframed.keep_alive),
            (Framing::UntilClose, false)
        );
        let old = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &Method::GET);
        assert!(!old.keep_alive, "HTTP/1.0 closes unless it says keep-alive");
        let none = head(
            "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
            &Method::GET,
        );
        assert_eq!(none.framing, Framing::Empty);
        let interim = head("HTTP/1.1 100 Continue\r\n\r\n", &Method::GET);
        assert_eq!(
            (interim.status.as_u16(), interim.framing),
            (100, Framing::Empty)
        );
    }

    #[test]
    fn bad_heads_are_refused_and_partial_ones_wait() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
            .unwrap()
            .is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(parse_head(bad.as_bytes(), &Method::GET).is_err(), "{bad:?}");
        }
        let same_twice = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(head(same_twice, &Method::GET).framing, Framing::Length(2));
    }

    /// Feeds `wire` in pieces of `step` bytes; returns the body.
    fn decode_in_steps(wire: &[u8], step: usize) -> Result<Vec<u8>, String> {
        let mut decoder = Chunked::default();
        let mut input = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut input)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::Done => return Ok(body),
                Decoded::More if fed == wire.len() => return Err("truncated".into()),
                Decoded::More => {
                    let end = (fed + step).min(wire.len());
                    input.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_cut() {
        let wire =
            b"5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode_in_steps(wire, step).unwrap(),
                b"helloabcdefghijklmnopqrstuvwxyz",
                "step {step}"
            );
        }
        assert_eq!(decode_in_steps(b"0\r\n\r\n", 1).unwrap(), b"");
        for bad in [&b"5\r\nhelloX\r\n0\r\n\r\n"[..], b"zz\r\n", b"5\nhello"] {
            assert!(decode_in_steps(bad, 4).is_err(), "{bad:?}");
        }
        assert!(
            decode_in_steps(b"fffffffffffffffff\r\n", 4).is_err(),
            "overflow"
        );
        assert_eq!(decode_in_steps(b"5\r\nhel", 2).unwrap_err(), "truncated");
    }
}
