//! GetObject: the one way bytes of an object are downloaded, whole or by range, into the
//! pipeline's memory or straight into the caller's.
//!
//! One body loop and one resume rule for every download: a body cut short (reset, early EOF,
//! read timeout) is resumed with a Range request from its next byte, pinned with `If-Match` to
//! the version its first answer came from — so the bytes of one download always come from one
//! version, and a replaced object fails with [`Error::Changed`] instead of mixing two.
//! A download that covers a whole object is checked against the CRC the server states for it
//! (OSS: CRC-64/XZ, on ranged answers too, so parts are checked once assembled; S3: CRC-64/NVME,
//! CRC-32C or CRC-32, on whole-object answers only).
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/getobject>

use bytes::Bytes;
use http::header::{HeaderValue, IF_MATCH, RANGE};
use http::Method;

use crate::error::{Error, Result};
use crate::http::answer::{Answer, BodyReader};
use crate::http::client::OssClient;
use crate::http::request::Request;
use crate::memory::chunks::{Chunks, Receiving};
use crate::memory::destination::Destination;
use crate::memory::lent::Lent;
use crate::ops::answer::stated_checksum;
use crate::ops::crc::{Checksum, Crc};
use crate::ops::range::{parse_content_range, ByteRange};
use crate::protocol::{Dialect, Target};

/// Which bytes of which object, and of which version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GetRequest<'a> {
    /// The object.
    pub(crate) target: &'a Target,
    /// Bytes wanted; `None` for the whole object. A range reaching past the end gets what
    /// exists (the output's `object_size` tells the real size).
    pub(crate) range: Option<ByteRange>,
    /// The ETag the object must still have (`If-Match`); `None` pins the download to whatever
    /// version answers first.
    pub(crate) if_match: Option<&'a str>,
}

/// Where a download's bytes go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Into memory of the download's choosing ([`Receiving`]); a body exactly as long as the
    /// lent memory, if any, is written there and comes back in it ([`Chunks::lent`]).
    Receive(Option<Lent>),
    /// Straight into the caller's memory, which is exactly as long as the range asked for.
    Into(Destination),
}

/// A finished download.
#[derive(Debug, Clone)]
pub(crate) struct GetOutput {
    /// The bytes, for [`Sink::Receive`]; empty for [`Sink::Into`].
    pub(crate) body: Chunks,
    /// Offset of the first byte in the object.
    pub(crate) offset: u64,
    /// Size of the whole object.
    pub(crate) object_size: u64,
    /// ETag of the version the bytes come from, as sent.
    pub(crate) etag: String,
    /// CRC of the bytes downloaded (whatever the sink), of the algorithm of the CRC the server
    /// states; `None` when it states none.
    pub(crate) crc: Option<Checksum>,
    /// The CRC the server states for the whole object (OSS sends it on ranged answers too),
    /// for checking an object assembled from parts.
    pub(crate) stated_crc: Option<Checksum>,
}

impl OssClient {
    /// Downloads `request`'s bytes into `sink`, resuming broken bodies and retrying failed
    /// attempts under one retry budget.
    ///
    /// # Errors
    /// `Service` (e.g. `NoSuchKey`, 404); `Changed` when the object no longer has the ETag the
    /// download is pinned to; `Transport`; `Protocol` when answers keep failing their length
    /// or CRC check, or (for [`Sink::Into`]) the object ends before the range does.
    pub(crate) async fn get(&self, request: GetRequest<'_>, sink: Sink) -> Result<GetOutput> {
        if let Sink::Into(dst) = &sink {
            let wanted = request.range.map(ByteRange::len);
            if wanted != Some(dst.len() as u64) {
                return Err(Error::Internal(format!(
                    "a destination of {} bytes for a read of {wanted:?}",
                    dst.len()
                )));
            }
        }
        if let Some(files) = self.local_store() {
            return files.get(request, sink).await;
        }
        let mut download = Download::new(request, sink, self.dialect());
        let mut ctx = self.retry_context();
        loop {
            let head = download.next_request()?;
            let answered = self.send(&head, &mut ctx).await;
            let outcome = match answered {
                Ok(response) => download.receive(self, &head, response).await,
                Err(e) => download.refused(e),
            };
            match outcome {
                Ok(true) => return download.finish(),
                Ok(false) => {}
                Err(e) => self.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        }
    }
}

/// Where the received bytes are, for either kind of sink.
#[derive(Debug)]
enum Kept {
    /// Waiting for the first answer, which tells how long the body is.
    NotStarted(Option<Lent>),
    Receiving(Receiving),
    Into {
        dst: Destination,
        written: usize,
    },
}

/// The state of one download across its attempts.
#[derive(Debug)]
struct Download<'a> {
    request: GetRequest<'a>,
    dialect: &'static Dialect,
    kept: Kept,
    /// Object offset of the next byte wanted.
    next: u64,
    /// One past the last byte wanted; `None` until an answer tells the object's size.
    end: Option<u64>,
    object_size: u64,
    /// The version every answer must come from: the caller's, else the first answer's.
    etag: Option<String>,
    /// CRC of the bytes kept, taken per piece while it is in cache, when the first answer
    /// stated a CRC to check it against.
    digest: Option<(Crc, crc_fast::Digest)>,
    /// The server's CRC of the whole object.
    stated_crc: Option<Checksum>,
    /// The download covers the whole object: its CRC must be the stated one.
    whole: bool,
    /// The object turned out empty where a range was asked for: ask without one.
    unranged: bool,
}

impl<'a> Download<'a> {
    fn new(request: GetRequest<'a>, sink: Sink, dialect: &'static Dialect) -> Self {
        let kept = match sink {
            Sink::Receive(lent) => Kept::NotStarted(lent),
            Sink::Into(dst) => Kept::Into { dst, written: 0 },
        };
        Download {
            request,
            dialect,
            kept,
            next: request.range.map_or(0, |r| r.start),
            end: None,
            object_size: 0,
            etag: request
                .if_match
                .filter(|e| !e.is_empty())
                .map(str::to_string),
            digest: None,
            stated_crc: None,
            whole: false,
            unranged: false,
        }
    }

    fn target(&self) -> &Target {
        self.request.target
    }

    /// The request for what is still missing.
    fn next_request(&self) -> Result<Request> {
        let target = self.target();
        let mut request = Request::new(Method::GET, &target.bucket, &target.key);
        self.dialect.ask_for_checksum(&mut request.head.headers);
        let started = self.kept_len() > 0;
        let range = match (self.request.range, self.end) {
            _ if self.unranged && !started => None,
            (_, Some(end)) if started => Some(ByteRange {
                start: self.next,
                end,
            }),
            (Some(r), _) => Some(ByteRange {
                start: self.next,
                end: r.end,
            }),
            (None, _) if started => Some(ByteRange {
                start: self.next,
                end: u64::MAX,
            }),
            (None, _) => None,
        };
        let headers = &mut request.head.headers;
        if let Some(r) = range {
            let value = if r.end == u64::MAX {
                format!("bytes={}-", r.start)
            } else {
                r.header()
            };
            headers.insert(RANGE, header_value(&value)?);
        }
        if let Some(etag) = &self.etag {
            headers.insert(IF_MATCH, header_value(etag)?);
        }
        Ok(request)
    }

    /// An error answer: a refused `If-Match` becomes [`Error::Changed`]; an empty object
    /// asked for by range is asked for again without one.
    fn refused(&mut self, error: Error) -> Result<bool> {
        match (error.service(), &self.etag) {
            (Some(e), Some(etag)) if e.status == 412 => Err(Error::Changed {
                target: self.target().clone(),
                etag: etag.clone(),
                request_id: e.request_id.clone(),
            }),
            // An empty object has no byte 0: S3-style servers answer 416 where OSS answers 200.
            (Some(e), _)
                if e.status == 416
                    && self.kept_len() == 0
                    && self.request.range.is_some_and(|r| r.start == 0)
                    && !self.unranged =>
            {
                self.unranged = true;
                Ok(false)
            }
            _ => Err(error),
        }
    }

    /// Takes one answer's body; true once everything wanted has arrived (and passed its
    /// checks). On a broken body the bytes received so far are kept for the resume.
    async fn receive(
        &mut self,
        client: &OssClient,
        request: &Request,
        response: Answer,
    ) -> Result<bool> {
        let target: &Target = self.request.target;
        let protocol = |reason: String| Error::Protocol {
            target: target.clone(),
            reason,
        };
        let header = |name: &str| response.header(name).map(str::to_string);
        let etag = header("etag").unwrap_or_default();
        let stated_crc = stated_checksum(client, target, &response)?;
        let length = response.content_length();
        // Object offsets this answer's body runs over.
        let (body_start, body_end, object_size) = if response.status().as_u16() == 206 {
            let value = header("content-range").unwrap_or_default();
            let (start, total) = parse_content_range(&value)
                .ok_or_else(|| protocol(format!("206 answer with bad Content-Range {value:?}")))?;
            if start != self.next {
                return Err(protocol(format!(
                    "asked for bytes from {}, got from {start}",
                    self.next
                )));
            }
            let len = length.ok_or_else(|| protocol("206 answer without Content-Length".into()))?;
            (start, Some(start + len), Some(total))
        } else {
            // A 200 is the whole object, whatever range was asked (a server may ignore Range).
            (0, length, length)
        };
        match &self.etag {
            Some(pinned) if !etag.is_empty() && etag != *pinned => {
                // The server ignored If-Match: the check is ours to make.
                return Err(Error::Changed {
                    target: target.clone(),
                    etag: pinned.clone(),
                    request_id: String::new(),
                });
            }
            None if !etag.is_empty() => self.etag = Some(etag),
            _ => {}
        }
        if let Some(size) = object_size {
            self.object_size = size;
        }
        if stated_crc.is_some() {
            self.stated_crc = stated_crc;
        }
        if self.end.is_none() {
            self.start_keeping(object_size);
        }
        let end = self.end.unwrap_or(u64::MAX);
        let mut at = body_start;
        let mut body = client.body_reader(&request.head, response);
        if body.in_place() && at == self.next && body_end.is_some_and(|e| e <= end) {
            self.receive_in_place(&mut body).await?;
            at = self.next;
        }
        while let Some(chunk) = body.next().await? {
            let chunk_end = at + chunk.len() as u64;
            let from = self.next.saturating_sub(at).min(chunk.len() as u64) as usize;
            let to = end.saturating_sub(at).min(chunk.len() as u64) as usize;
            if from == 0 && to == chunk.len() {
                self.keep(chunk)?;
            } else if from < to {
                self.keep(chunk.slice(from..to))?;
            }
            at = chunk_end;
            if body_end.is_some_and(|e| e > end) && at >= end {
                break; // The rest is more than was asked for (a 200 to a ranged request).
            }
        }
        if self.end.is_none() {
            // No length stated: the connection's end was the body's end.
            self.end = Some(self.next);
            self.object_size = self.next;
        }
        let end = self.end.unwrap_or(self.next);
        if self.next < end {
            let from = self.request.range.map_or(0, |r| r.start);
            return Err(protocol(format!(
                "body ended after {} of {} bytes",
                self.next - from,
                end - from
            )));
        }
        let taken = self.digest.as_ref().map(|(crc, d)| (*crc, d.finalize()));
        if let (Some(stated), Some((crc, actual)), true) = (self.stated_crc, taken, self.whole) {
            if stated.crc == crc && stated.value != actual {
                // Corrupt somewhere: start over rather than resume.
                self.restart();
                return Err(protocol(format!(
                    "{} mismatch: server says {}, body has {actual}",
                    crc.name(),
                    stated.value
                )));
            }
        }
        Ok(true)
    }

    /// Reads the body straight from the socket into the kept memory, for as long as the sink
    /// has memory of its own to read into (not for bodies kept as the pieces they arrive in).
    async fn receive_in_place(&mut self, body: &mut BodyReader<'_>) -> Result<()> {
        loop {
            let (read, written) = match &mut self.kept {
                Kept::Receiving(Receiving::Lent { memory, written }) => {
                    let mut room = memory
                        .as_mut_slice()
                        .get_mut(*written..)
                        .unwrap_or_default();
                    let n = body.read_into(&mut room).await?;
                    *written += n;
                    (&memory.as_slice()[*written - n..*written], n)
                }
                Kept::Receiving(Receiving::Gathered(buf)) => {
                    let n = body.read_into(buf.as_vec_mut()).await?;
                    let all = buf.as_slice();
                    (&all[all.len() - n..], n)
                }
                Kept::Into { dst, written } => {
                    let mut room = dst.as_mut_slice().get_mut(*written..).unwrap_or_default();
                    let n = body.read_into(&mut room).await?;
                    *written += n;
                    (&dst.as_slice()[*written - n..*written], n)
                }
                Kept::NotStarted(_) | Kept::Receiving(Receiving::Pieces(_)) => return Ok(()),
            };
            if written == 0 {
                return Ok(());
            }
            if let Some((_, digest)) = &mut self.digest {
                digest.update(read);
            }
            self.next += written as u64;
        }
    }

    /// The first answer told the object's size: fixes the end of what is wanted and makes room
    /// for it.
    fn start_keeping(&mut self, object_size: Option<u64>) {
        let wanted_end = self.request.range.map_or(u64::MAX, |r| r.end);
        self.end = object_size.map(|size| wanted_end.min(size));
        self.whole = self.next == 0
            && match self.request.range {
                None => true,
                Some(_) => object_size.is_some() && self.end == object_size,
            };
        self.digest = self
            .stated_crc
            .map(|stated| (stated.crc, stated.crc.digest()));
        let expected = self.end.map_or(0, |e| e.saturating_sub(self.next));
        let expected = usize::try_from(expected.min(1 << 30)).unwrap_or(0);
        if let Kept::NotStarted(lent) = &mut self.kept {
            self.kept = Kept::Receiving(match lent.take() {
                Some(memory) if memory.len() == expected && self.end.is_some() => {
                    Receiving::into_lent(memory)
                }
                _ => Receiving::for_length(expected),
            });
        }
    }

    /// Keeps bytes that continue what was kept.
    fn keep(&mut self, piece: Bytes) -> Result<()> {
        if let Some((_, digest)) = &mut self.digest {
            digest.update(&piece);
        }
        self.next += piece.len() as u64;
        match &mut self.kept {
            Kept::NotStarted(_) => Err(Error::Internal("bytes before an answer".into())),
            Kept::Receiving(body) => {
                body.push(piece);
                Ok(())
            }
            Kept::Into { dst, written } => {
                if !dst.write(*written, &piece) {
                    return Err(Error::Internal("a read overran its destination".into()));
                }
                *written += piece.len();
                Ok(())
            }
        }
    }

    /// Bytes kept so far.
    fn kept_len(&self) -> usize {
        match &self.kept {
            Kept::NotStarted(_) => 0,
            Kept::Receiving(body) => body.len(),
            Kept::Into { written, .. } => *written,
        }
    }

    /// Forgets everything received (a corrupt body), keeping the version pinned.
    fn restart(&mut self) {
        self.next = self.request.range.map_or(0, |r| r.start);
        self.end = None;
        self.kept = match std::mem::replace(&mut self.kept, Kept::NotStarted(None)) {
            Kept::Into { dst, .. } => Kept::Into { dst, written: 0 },
            _ => Kept::NotStarted(None),
        };
    }

    fn finish(self) -> Result<GetOutput> {
        let offset = self
            .request
            .range
            .map_or(0, |r| r.start.min(self.object_size));
        let body = match self.kept {
            Kept::Receiving(body) => body.finish(),
            Kept::Into { .. } => {
                // The caller's memory must be filled: an object ending early is an error.
                let wanted_end = self.request.range.map_or(0, |r| r.end);
                if self.next < wanted_end {
                    return Err(Error::Protocol {
                        target: self.request.target.clone(),
                        reason: format!(
                            "the object is {} bytes long; the read wanted bytes up to {}",
                            self.object_size, wanted_end
                        ),
                    });
                }
                Chunks::new()
            }
            Kept::NotStarted(_) => Chunks::new(),
        };
        Ok(GetOutput {
            body,
            offset,
            object_size: self.object_size,
            etag: self.etag.unwrap_or_default(),
            crc: self.digest.map(|(crc, digest)| Checksum {
                crc,
                value: digest.finalize(),
            }),
            stated_crc: self.stated_crc,
        })
    }
}

fn header_value(value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value)
        .map_err(|_| Error::invalid("header value", value, "it cannot be sent in HTTP"))
}
