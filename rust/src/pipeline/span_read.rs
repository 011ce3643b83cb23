//! Reading a span of one object straight into the caller's memory, in ranged parts fetched at
//! once: how an object is read after its stream has moved on (kept, copied or unpickled
//! objects), so that such reads are as fast as streamed ones rather than one part at a time.
//! No budget is taken: the bytes land in the caller's memory. (A read of at most one part
//! goes through one ranged GET instead, kept by `DataObject` for the reads that follow.)
//! Every part is pinned to the version the object was first read from.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::memory::destination::{Destination, Writers};
use crate::ops::crc::{parts_mismatch, Assembly};
use crate::ops::get::{GetOutput, GetRequest, Sink};
use crate::ops::range::ByteRange;
use crate::protocol::Target;

/// Which bytes of which object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span<'a> {
    /// Bucket of the object.
    pub bucket: &'a str,
    /// Key of the object.
    pub key: &'a str,
    /// Offset of the span's first byte in the object.
    pub start: u64,
    /// The ETag of the version read so far; `None` pins the span to the version its first
    /// part comes from.
    pub if_match: Option<&'a str>,
}

/// How a span is cut and fetched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanPlan {
    /// Bytes per ranged GET (the last may be shorter).
    pub part_size: u64,
    /// GETs in flight at once, at most (the client's throttle may allow fewer).
    pub concurrency: usize,
}

/// Downloads bytes `span.start..span.start+dst.len()` of the object into `dst`, in parts of
/// `plan.part_size` with up to `plan.concurrency` in flight, each written where it belongs.
///
/// Every download counts itself in `writers` while it runs: the caller must wait for
/// [`Writers::stopped`] before it releases the memory — after an error, or after dropping this
/// future (which aborts the downloads), as well.
///
/// # Errors
/// The first failing part's error (its object named); the other parts are then cancelled.
pub(crate) async fn read_span_into(
    client: &Arc<OssClient>,
    runtime: &Handle,
    span: Span<'_>,
    dst: Destination,
    plan: SpanPlan,
    writers: &Arc<Writers>,
) -> Result<()> {
    let start = span.start;
    let end = start
        .checked_add(dst.len() as u64)
        .ok_or_else(|| Error::Internal(format!("a span from {start} overflows")))?;
    let mut pending = Vec::new();
    let mut rest = dst;
    for range in (ByteRange { start, end }).parts(plan.part_size) {
        let (piece, tail) = rest.split((range.end - range.start) as usize);
        pending.push((range, piece));
        rest = tail;
    }
    // Started in order, so the span fills from its front.
    pending.reverse();
    let target = client.target(span.bucket, span.key);
    let mut etag = span.if_match.map(str::to_string);
    let mut done = Vec::with_capacity(pending.len());
    if etag.is_none() {
        // Every part must come from one version: learn it from the first part alone.
        if let Some((range, piece)) = pending.pop() {
            let get = GetRequest {
                target: &target,
                range: Some(range),
                if_match: None,
            };
            let _writing = writers.enter();
            let out = client.get(get, Sink::Into(piece)).await?;
            etag = Some(out.etag.clone());
            done.push((range, out));
        }
    }
    // Dropping the set (an error, Ctrl-C) aborts every download still running.
    let mut running = JoinSet::new();
    let slots = plan.concurrency.max(1);
    loop {
        while running.len() < slots {
            let Some((range, piece)) = pending.pop() else {
                break;
            };
            let client = client.clone();
            let target = target.clone();
            let etag = etag.clone();
            let writer = writers.enter();
            running.spawn_on(
                async move {
                    let _writing = writer;
                    let get = GetRequest {
                        target: &target,
                        range: Some(range),
                        if_match: etag.as_deref(),
                    };
                    let out = client.get(get, Sink::Into(piece)).await?;
                    Ok((range, out))
                },
                runtime,
            );
        }
        let Some(joined) = running.join_next().await else {
            return check_whole(&target, start, end, done);
        };
        let part = joined
            .unwrap_or_else(|e| Err(Error::Internal(format!("download task failed: {e}"))))?;
        done.push(part);
    }
}

/// When the span is the whole object, its parts (in any order) must combine to the CRC-64 the
/// server states for it. A span of part of an object has nothing to be checked against.
fn check_whole(
    target: &Target,
    start: u64,
    end: u64,
    mut parts: Vec<(ByteRange, GetOutput)>,
) -> Result<()> {
    let Some((_, first)) = parts.first() else {
        return Ok(());
    };
    if start != 0 || end != first.object_size {
        return Ok(());
    }
    let mut assembly = Assembly::new(first.object_size, first.stated_crc);
    parts.sort_by_key(|(range, _)| range.start);
    for (range, out) in &parts {
        assembly
            .add(range.start, range.len(), out.crc)
            .map_err(|mismatch| parts_mismatch(target, mismatch))?;
    }
    Ok(())
}
