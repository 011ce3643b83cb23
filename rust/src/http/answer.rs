//! A successful answer, from either HTTP stack (reqwest, or our plain path for `http://`
//! GETs), and its body read within the between-bytes timeout.

use std::pin::Pin;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use http::{HeaderMap, StatusCode};
use tokio::time::Sleep;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::http::plain::{PlainAnswer, PlainBody};
use crate::sign::RequestHead;

/// An answer whose head has arrived; its body is read with [`OssClient::body_reader`].
#[derive(Debug)]
pub(crate) enum Answer {
    Reqwest(reqwest::Response),
    Plain(PlainAnswer),
}

impl Answer {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Answer::Reqwest(r) => r.status(),
            Answer::Plain(p) => p.status,
        }
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        match self {
            Answer::Reqwest(r) => r.headers(),
            Answer::Plain(p) => &p.headers,
        }
    }

    /// A header as text, when present and visible ASCII.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The body's length, when the answer states it.
    pub(crate) fn content_length(&self) -> Option<u64> {
        match self {
            Answer::Reqwest(r) => r.content_length(),
            Answer::Plain(p) => p.body.remaining(),
        }
    }
}

impl OssClient {
    /// `answer`'s body, read piece by piece within the between-bytes timeout.
    pub(crate) fn body_reader<'a>(
        &'a self,
        head: &'a RequestHead,
        answer: Answer,
    ) -> BodyReader<'a> {
        let between = self.timeouts().between_bytes;
        BodyReader {
            client: self,
            head,
            answer,
            between,
            stall: Box::pin(tokio::time::sleep(between)),
        }
    }

    /// All of a (small) answer's body.
    pub(crate) async fn body_bytes(&self, head: &RequestHead, answer: Answer) -> Result<Vec<u8>> {
        let mut reader = self.body_reader(head, answer);
        let mut body = Vec::new();
        while let Some(chunk) = reader.next().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// An answer's body, read piece by piece; fails when no byte arrives for the between-bytes
/// timeout (`readTimeoutMs`). One timer per body, reset for every piece.
pub(crate) struct BodyReader<'a> {
    client: &'a OssClient,
    head: &'a RequestHead,
    answer: Answer,
    between: Duration,
    stall: Pin<Box<Sleep>>,
}

impl BodyReader<'_> {
    /// The next piece, `None` at the body's end.
    ///
    /// # Errors
    /// `Transport` when the connection breaks or stalls.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>> {
        self.stall
            .as_mut()
            .reset(tokio::time::Instant::now() + self.between);
        let (client, head) = (self.client, self.head);
        tokio::select! {
            biased;
            chunk = next_chunk(&mut self.answer) => chunk.map_err(|e| match e {
                Broken::Reqwest(e) => client.transport_error(head, &e),
                Broken::Io(e) => broken_body(client, head, &e),
            }),
            () = &mut self.stall => Err(stalled(client, head, self.between)),
        }
    }

    /// The plain path's body when it can be read straight into memory of the caller's
    /// ([`BodyReader::read_into`]): of known length, on our own HTTP path.
    pub(crate) fn in_place(&self) -> bool {
        matches!(&self.answer, Answer::Plain(p) if p.body.remaining().is_some())
    }

    /// Reads body bytes straight into `dst`; 0 at the body's end. Only when
    /// [`BodyReader::in_place`].
    ///
    /// # Errors
    /// `Transport` when the connection breaks or stalls.
    pub(crate) async fn read_into(&mut self, dst: &mut impl BufMut) -> Result<usize> {
        let Answer::Plain(answer) = &mut self.answer else {
            return Err(Error::Internal("read_into on a reqwest body".into()));
        };
        self.stall
            .as_mut()
            .reset(tokio::time::Instant::now() + self.between);
        let (client, head) = (self.client, self.head);
        let body: &mut PlainBody = &mut answer.body;
        tokio::select! {
            biased;
            n = body.read_into(dst) => n.map_err(|e| broken_body(client, head, &e)),
            () = &mut self.stall => Err(stalled(client, head, self.between)),
        }
    }
}

enum Broken {
    Reqwest(reqwest::Error),
    Io(std::io::Error),
}

async fn next_chunk(answer: &mut Answer) -> std::result::Result<Option<Bytes>, Broken> {
    match answer {
        Answer::Reqwest(r) => r.chunk().await.map_err(Broken::Reqwest),
        Answer::Plain(p) => p.body.chunk().await.map_err(Broken::Io),
    }
}

fn broken_body(client: &OssClient, head: &RequestHead, e: &std::io::Error) -> Error {
    Error::Transport {
        method: head.method.to_string(),
        target: client.target_of(head),
        reason: format!("reading the answer's body: {e}"),
        timeout: e.kind() == std::io::ErrorKind::TimedOut,
        sent: true,
    }
}

fn stalled(client: &OssClient, head: &RequestHead, between: Duration) -> Error {
    Error::Transport {
        method: head.method.to_string(),
        target: client.target_of(head),
        reason: format!(
            "no body bytes arrived for {} ms (readTimeoutMs)",
            between.as_millis()
        ),
        timeout: true,
        sent: true,
    }
}
