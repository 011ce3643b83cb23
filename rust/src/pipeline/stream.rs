//! The consumer's side of the pipeline: objects out, in input order.
//!
//! The consumer reads an object's first part with [`ObjectStream::next_object`] and the rest
//! with [`ObjectStream::next_part`] (or all of it at once, `read_rest`); moving to the next
//! object cancels what is left of the current one. [`ObjectStream::close`] (the dataset loop
//! ended) keeps only the current object's parts. Dropping the stream cancels everything.

use std::sync::Arc;

use tokio::runtime::Handle;

use super::input::{Input, ObjectRequest, Queued, Shard};
use super::schedule::{AbortOnDrop, Outcome, Schedule, Slot, StreamSettings};
use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::memory::budget::{Budget, Reservation};
use crate::memory::chunks::Chunks;
use crate::ops::crc::{parts_mismatch, Assembly, Checksum};
use crate::ops::get::GetOutput;

/// Bytes of an object, holding their share of the budget until dropped.
#[derive(Debug)]
pub struct Part {
    /// The bytes.
    pub body: Chunks,
    /// Their offset in the object.
    pub offset: u64,
    _reservation: Option<Reservation>,
}

/// The start of an object: what it is, and its first part.
#[derive(Debug)]
pub struct ObjectStart {
    /// Position in the stream, for [`ObjectStream::next_part`].
    pub seq: u64,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The request's label.
    pub label: String,
    /// Size of the whole object.
    pub size: u64,
    /// ETag of the version every byte of this object comes from; reads of it after the
    /// stream has moved on must be pinned to it.
    pub etag: String,
    /// Bytes from offset 0; shorter than `size` when more parts follow.
    pub first: Part,
}

/// A settled slot: its object, what was fetched, and the budget it holds.
type Settled = (u64, Arc<ObjectRequest>, GetOutput, Reservation);

/// An ordered, bounded pipeline of GETs.
pub struct ObjectStream {
    pub(super) schedule: Schedule,
    pub(super) input: Input,
    /// The object the consumer is on.
    pub(super) current: Option<u64>,
    /// Its bytes handed over so far, checked against its CRC-64 when the last part is in.
    assembly: Option<Assembly>,
    /// Whether large objects are still lent memory whole (see `lend`).
    pub(super) lend_large: bool,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("settings", &self.schedule.settings)
            .field("queued", &self.input.len())
            .field("jobs", &self.schedule.jobs.len())
            .field("slots", &self.schedule.slots.len())
            .field("running", &self.schedule.running())
            .finish()
    }
}

impl ObjectStream {
    /// A stream of the objects the caller will [`push`](ObjectStream::push).
    pub fn new(
        client: Arc<OssClient>,
        runtime: Handle,
        budget: Arc<Budget>,
        settings: StreamSettings,
    ) -> Self {
        ObjectStream {
            schedule: Schedule::new(client, runtime, budget, settings),
            input: Input::default(),
            current: None,
            assembly: None,
            lend_large: true,
        }
    }

    /// A stream of this shard's objects under `prefix`, in listing order.
    pub(crate) fn from_prefix(
        client: Arc<OssClient>,
        runtime: Handle,
        budget: Arc<Budget>,
        settings: StreamSettings,
        bucket: &str,
        prefix: &str,
        shard: Shard,
    ) -> Self {
        let input = Input::listing(client.clone(), &runtime, bucket, prefix, shard);
        ObjectStream {
            schedule: Schedule::new(client, runtime, budget, settings),
            input,
            current: None,
            assembly: None,
            lend_large: true,
        }
    }

    /// Queues one object after those already queued.
    pub fn push(&mut self, request: ObjectRequest) {
        self.input.push(Queued::Object(request, None));
    }

    /// Queues an error to be reported at this position (e.g. an invalid URI in the input).
    pub fn push_error(&mut self, error: Error) {
        self.input.push(Queued::Error(error));
    }

    /// How many more objects the caller should push to keep the pipeline busy.
    pub fn wants(&self) -> usize {
        let queued = self.input.len() + self.schedule.slots.len();
        (self.schedule.settings.concurrency * 2).saturating_sub(queued)
    }

    /// Waits, at the start, until the first object to fetch is known (the listing's first
    /// answer), so that memory can be lent for the first requests too.
    pub(crate) async fn wait_for_input(&mut self) {
        let s = &self.schedule;
        if self.input.is_empty() && s.jobs.is_empty() && s.slots.is_empty() {
            self.input.receive_listed().await;
        }
    }

    /// Cancels what is left of the object being read and lets go of memory lent to it. The
    /// Python layer calls it holding the GIL before it waits for the next object: a `bytes`
    /// let go without the GIL is only freed once the waiting thread takes the GIL again (up to
    /// 100 ms later), and the next object's parts would meanwhile fault in fresh memory.
    pub fn leave_current(&mut self) {
        if let Some(previous) = self.current.take() {
            self.schedule.discard(previous);
        }
    }

    /// The next object's first part, in input order; `None` when everything queued has been
    /// returned. What is left of the previous object is cancelled.
    ///
    /// # Errors
    /// The object's GET error, a listing error, or an error queued with `push_error`.
    pub async fn next_object(&mut self) -> Option<Result<ObjectStart>> {
        self.leave_current();
        self.assembly = None;
        loop {
            let wakeups = self.schedule.arm_wakeups();
            self.fill();
            if let Some(slot) = self.schedule.slots.pop_front() {
                self.current = Some(slot.seq);
                let settled = self.settle(slot).await;
                return Some(settled.map(|settled| self.start(settled)));
            }
            if !self.schedule.jobs.is_empty() || !self.input.is_empty() {
                // Out of budget (held by other streams of this process): wait for a release.
                wakeups.wait().await;
                continue;
            }
            if !self.input.is_listing() {
                return None;
            }
            self.input.receive_listed().await;
        }
    }

    /// The next part of object `seq`; `None` when it has no more or the stream moved past it.
    ///
    /// # Errors
    /// The part's GET error.
    pub async fn next_part(&mut self, seq: u64) -> Option<Result<Part>> {
        if self.current != Some(seq) {
            return None;
        }
        self.stop_lending_large();
        loop {
            let wakeups = self.schedule.arm_wakeups();
            self.fill();
            if self.schedule.slots.front().is_some_and(|s| s.seq == seq) {
                let slot = self.schedule.slots.pop_front()?;
                let settled = self.settle(slot).await.and_then(|settled| {
                    let (_, request, out, _) = &settled;
                    self.check_part(request, out.offset, out.body.len() as u64, out.crc)?;
                    Ok(settled)
                });
                self.fill();
                return Some(settled.map(|(_, _, out, reservation)| Part {
                    body: out.body,
                    offset: out.offset,
                    _reservation: Some(reservation),
                }));
            }
            if self.schedule.jobs.front().is_none_or(|j| j.seq != seq) {
                return None;
            }
            wakeups.wait().await;
        }
    }

    /// Stops everything except the rest of the current object, which a reader may still want:
    /// the consumer has gone (its loop ended or broke), so nothing after it will be read.
    pub(crate) fn close(&mut self) {
        self.input.close();
        self.schedule.keep_only(self.current);
    }

    /// Adds `len` bytes at `offset` of the current object, whose CRC is `crc`, to what has
    /// been handed over of it. When they complete the object and it is not what the server
    /// states, fails — before those bytes are handed over — and cancels the rest.
    pub(super) fn check_part(
        &mut self,
        request: &ObjectRequest,
        offset: u64,
        len: u64,
        crc: Option<Checksum>,
    ) -> Result<()> {
        let Some(assembly) = self.assembly.as_mut() else {
            return Ok(());
        };
        assembly.add(offset, len, crc).map_err(|mismatch| {
            if let Some(current) = self.current {
                self.schedule.discard(current);
            }
            let target = self.schedule.client.target(&request.bucket, &request.key);
            parts_mismatch(&target, mismatch)
        })
    }

    pub(super) fn fill(&mut self) {
        self.schedule.fill(&mut self.input, self.current);
    }

    /// Waits for `task` to end, starting later requests as earlier ones finish meanwhile: while
    /// the one waited for is slow (a retry backing off, a large part), the pipeline behind it
    /// must not drain.
    pub(super) async fn join_refilling<T>(
        &mut self,
        task: &mut AbortOnDrop<Result<T>>,
    ) -> Result<T> {
        loop {
            let wakeups = self.schedule.arm_wakeups();
            self.fill();
            tokio::select! {
                joined = &mut task.0 => {
                    return joined.unwrap_or_else(|e| {
                        Err(Error::Internal(format!("download task failed: {e}")))
                    });
                }
                _ = wakeups.wait() => {}
            }
        }
    }

    /// Waits for a slot's result; on failure the rest of its object is cancelled.
    pub(super) async fn settle(&mut self, slot: Slot) -> Result<Settled> {
        let Slot {
            seq,
            request,
            outcome,
            ..
        } = slot;
        let fetched = match outcome {
            Outcome::Failed(e) => Err(e),
            Outcome::Running(mut task) => self.join_refilling(&mut task).await,
        };
        match fetched {
            Ok((out, reservation)) => Ok((seq, request, out, reservation)),
            Err(e) => {
                self.schedule.discard(seq);
                Err(e)
            }
        }
    }

    fn start(&mut self, (seq, request, out, reservation): Settled) -> ObjectStart {
        let fetched_to = out.offset + out.body.len() as u64;
        let size = out.object_size.max(fetched_to);
        // A whole object was checked by its GET; one in parts is checked as they come in.
        self.assembly = (fetched_to < size).then(|| {
            let mut assembly = Assembly::new(size, out.stated_crc);
            // Cannot fail: the object is not complete yet.
            let _ = assembly.add(out.offset, out.body.len() as u64, out.crc);
            assembly
        });
        if request.size.is_none() && out.object_size > fetched_to {
            // The first answer told the size: the rest comes from the same version.
            let etag = Some(out.etag.clone());
            let to = out.object_size;
            self.schedule
                .schedule_parts(seq, &request, fetched_to, to, etag, None);
        }
        self.fill();
        ObjectStart {
            seq,
            bucket: request.bucket.clone(),
            key: request.key.clone(),
            label: request.label.clone(),
            size,
            etag: out.etag,
            first: Part {
                body: out.body,
                offset: out.offset,
                _reservation: Some(reservation),
            },
        }
    }
}
