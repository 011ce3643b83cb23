//! Scheduling: objects become jobs (one GET, or ranged parts), and jobs become running requests
//! — within the width (`concurrency`), the lookahead (finished results not yet taken) and the
//! byte budget.
//!
//! An object becomes one job (a whole GET) when its size is known and at most one part, or
//! ranged jobs of `part_size` (`prefetchUnitMB`), every one pinned to the listing's ETag. An
//! object of unknown size (named by URI, from a manifest) is asked as `bytes=0-(part-1)`; the
//! rest is scheduled, pinned to that answer's ETag, once its `Content-Range` tells the size.
//!
//! Invariants:
//! - A job spawns only with a reservation from the per-process [`Budget`] for its bytes; the
//!   reservation travels with the result and is released when Python has the bytes (or the
//!   request is cancelled). A stream with nothing in flight or buffered may overdraw one part,
//!   so streams sharing a budget never wait on each other forever; so may the object being
//!   read when nothing of it is in flight, so its rest never waits on later objects' results.
//! - Results wait in `slots`, ordered by `(seq, offset)`: the consumer takes them in input
//!   order whatever order they finish in.
//! - `running` counts requests from spawn until their future completes *or is dropped*
//!   ([`RunningGuard`]); a count leaked by an aborted task once stalled the pipeline for good.
//! - Dropping a slot aborts its request ([`AbortOnDrop`]), which releases its reservation.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::input::{Input, ObjectRequest, Queued};
use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::memory::budget::{Budget, Reservation};
use crate::memory::destination::{Destination, WriterGuard};
use crate::memory::lent::{Lent, Owner};
use crate::ops::get::{GetOutput, GetRequest, Sink};
use crate::ops::range::ByteRange;

/// Pipeline limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Requests running at once.
    pub concurrency: usize,
    /// Objects larger than this are fetched in ranged parts of this size.
    pub part_size: u64,
    /// Fetched objects buffered ahead of the consumer, at most.
    pub lookahead: usize,
}

/// One request to make: a whole object, or one ranged part of it.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) seq: u64,
    pub(super) request: Arc<ObjectRequest>,
    /// `None`: the whole object.
    pub(super) range: Option<ByteRange>,
    /// Bytes to reserve before it may start.
    pub(super) reserve: u64,
    /// The version every part must come from.
    pub(super) etag: Option<String>,
    /// Memory lent for the whole body (see `lend`).
    pub(super) lent: Option<Lent>,
}

pub(super) type Fetched = Result<(GetOutput, Reservation)>;

/// Counts a request as running from spawn until its future completes or is dropped.
struct RunningGuard {
    running: Arc<AtomicUsize>,
    finished: Arc<Notify>,
}

impl RunningGuard {
    fn enter(running: &Arc<AtomicUsize>, finished: &Arc<Notify>) -> Self {
        running.fetch_add(1, Ordering::AcqRel);
        RunningGuard {
            running: running.clone(),
            finished: finished.clone(),
        }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.finished.notify_waiters();
    }
}

/// Wake-ups armed before the pipeline is looked at, so none is lost between the look and the
/// wait: one of this stream's requests ended, or some budget came back.
pub(super) struct Wakeups {
    finished: Pin<Box<OwnedNotified>>,
    released: Pin<Box<OwnedNotified>>,
}

impl Wakeups {
    pub(super) async fn wait(self) {
        tokio::select! {
            _ = self.finished => {}
            _ = self.released => {}
        }
    }
}

/// A spawned request, cancelled when dropped: with its slot (consumer moved on, stream dropped,
/// the wait for it interrupted by Ctrl-C) or with the read it writes for.
pub(super) struct AbortOnDrop<T>(pub(super) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        // The task owns its reservation, if any: aborting drops it and gives the bytes back.
        self.0.abort();
    }
}

pub(super) enum Outcome {
    Running(AbortOnDrop<Fetched>),
    Failed(Error),
}

/// A request started (or an error to report) at its place in the order.
pub(super) struct Slot {
    pub(super) seq: u64,
    pub(super) offset: u64,
    pub(super) request: Arc<ObjectRequest>,
    pub(super) outcome: Outcome,
}

/// Jobs not yet started and requests started, with what limits them.
pub(super) struct Schedule {
    pub(super) client: Arc<OssClient>,
    pub(super) runtime: Handle,
    pub(super) budget: Arc<Budget>,
    pub(super) settings: StreamSettings,
    /// Jobs in order, not yet started.
    pub(super) jobs: VecDeque<Job>,
    /// Started requests and queued errors, in order.
    pub(super) slots: VecDeque<Slot>,
    /// Large objects whose every part is written into one lent memory, by `seq`.
    pub(super) lent_whole: VecDeque<(u64, Owner)>,
    /// Later objects wait while the consumer is on one of `lent_whole`
    /// ([`ObjectStream::one_large_at_a_time`](super::ObjectStream::one_large_at_a_time)).
    pub(super) one_large_at_a_time: bool,
    running: Arc<AtomicUsize>,
    finished: Arc<Notify>,
    next_seq: u64,
}

impl Schedule {
    pub(super) fn new(
        client: Arc<OssClient>,
        runtime: Handle,
        budget: Arc<Budget>,
        settings: StreamSettings,
    ) -> Self {
        // A part must fit in the budget, or it could never be reserved.
        let part_size = settings.part_size.clamp(1, (budget.capacity() / 2).max(1));
        Schedule {
            client,
            runtime,
            budget,
            settings: StreamSettings {
                concurrency: settings.concurrency.max(1),
                part_size,
                lookahead: settings.lookahead.max(settings.concurrency).max(1),
            },
            jobs: VecDeque::new(),
            slots: VecDeque::new(),
            lent_whole: VecDeque::new(),
            one_large_at_a_time: false,
            running: Arc::new(AtomicUsize::new(0)),
            finished: Arc::new(Notify::new()),
            next_seq: 0,
        }
    }

    /// Requests running now (including ones backing off between attempts).
    pub(super) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// See [`Wakeups`].
    pub(super) fn arm_wakeups(&self) -> Wakeups {
        let mut finished = Box::pin(self.finished.clone().notified_owned());
        let mut released = Box::pin(self.budget.released());
        finished.as_mut().enable();
        released.as_mut().enable();
        Wakeups { finished, released }
    }

    /// Whether a job of object `seq` must wait for the consumer to move on: the object it is
    /// on (`current`), or else the first one it will get, is another, lent whole.
    fn waits_for_large(&self, seq: u64, current: Option<u64>) -> bool {
        let head = current.or_else(|| self.slots.front().map(|s| s.seq));
        head.is_some_and(|head| head != seq && self.lent_whole.iter().any(|(s, _)| *s == head))
    }

    /// Whether any request of object `seq` is in flight or waiting to be taken.
    fn holds(&self, seq: Option<u64>) -> bool {
        self.slots.iter().any(|s| Some(s.seq) == seq)
    }

    /// Turns queued objects into jobs and jobs into running requests, within the limits.
    /// `current` is the object the consumer is on: its parts may go beyond the lookahead.
    pub(super) fn fill(&mut self, input: &mut Input, current: Option<u64>) {
        loop {
            if self.jobs.is_empty() && !self.expand_next(input) {
                return;
            }
            let Some(job) = self.jobs.front() else {
                return;
            };
            let for_current = Some(job.seq) == current;
            if self.one_large_at_a_time && self.waits_for_large(job.seq, current) {
                return;
            }
            // Tasks backing off between attempts count here too; the client's adaptive gate
            // decides how many of them may have a request on the wire.
            if self.running() >= self.settings.concurrency
                || (!for_current && self.slots.len() >= self.settings.lookahead)
            {
                return;
            }
            let reservation = match self.budget.try_reserve(job.reserve) {
                Some(r) => r,
                // Nothing is in flight or buffered for the object being read (or at all): take
                // one part on credit. Without it, the rest of an object whose size was learnt
                // late would wait forever for budget held by later objects' results, which the
                // consumer cannot reach before finishing this object.
                None if self.slots.is_empty() || (for_current && !self.holds(current)) => {
                    self.budget.force_reserve(job.reserve)
                }
                None => return,
            };
            let Some(job) = self.jobs.pop_front() else {
                return;
            };
            self.spawn(job, reservation);
        }
    }

    /// Moves the next queued object (or error) into jobs; false when nothing is queued.
    fn expand_next(&mut self, input: &mut Input) -> bool {
        let Some(item) = input.pop() else {
            return false;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        match item {
            Queued::Error(error) => self.insert_slot(Slot {
                seq,
                offset: 0,
                request: Arc::new(ObjectRequest::default()),
                outcome: Outcome::Failed(error),
            }),
            Queued::Object(request, lent) => {
                let request = Arc::new(request);
                let part = self.settings.part_size;
                let (range, reserve, lent) = match request.size {
                    Some(size) if size > part => {
                        let etag = request.etag.clone();
                        self.schedule_parts(seq, &request, 0, size, etag, lent);
                        return true;
                    }
                    Some(size) => (None, size, lent),
                    // Unknown size: ask for one part's worth, learn the size from the answer.
                    None => (
                        Some(ByteRange {
                            start: 0,
                            end: part,
                        }),
                        part,
                        None,
                    ),
                };
                self.jobs.push_back(Job {
                    seq,
                    request,
                    range,
                    reserve,
                    etag: None,
                    lent,
                });
            }
        }
        true
    }

    /// Adds jobs for bytes `from..to` of object `seq`, in order, before any later object's.
    /// With `lent` memory of exactly that length, each part is written into its piece of it.
    pub(super) fn schedule_parts(
        &mut self,
        seq: u64,
        request: &Arc<ObjectRequest>,
        from: u64,
        to: u64,
        etag: Option<String>,
        lent: Option<Lent>,
    ) {
        let at = self.jobs.partition_point(|j| j.seq <= seq);
        let whole = ByteRange {
            start: from,
            end: to,
        };
        let mut lent = lent.filter(|l| l.len() as u64 == whole.len());
        if let Some(memory) = &lent {
            self.lent_whole.push_back((seq, memory.owner().clone()));
        }
        for (i, range) in whole.parts(self.settings.part_size).enumerate() {
            let piece = lent.take().map(|memory| {
                let (piece, rest) =
                    memory.split(usize::try_from(range.len()).unwrap_or(usize::MAX));
                lent = Some(rest);
                piece
            });
            let job = Job {
                seq,
                request: request.clone(),
                range: Some(range),
                reserve: range.len(),
                etag: etag.clone(),
                lent: piece,
            };
            self.jobs.insert(at + i, job);
        }
    }

    fn spawn(&mut self, job: Job, mut reservation: Reservation) {
        let client = self.client.clone();
        let request = job.request.clone();
        let running = RunningGuard::enter(&self.running, &self.finished);
        let task = self.runtime.spawn(async move {
            // Dropped when the request ends or is aborted: either way it no longer runs.
            let _running = running;
            let target = client.target(&request.bucket, &request.key);
            let get = GetRequest {
                target: &target,
                range: job.range,
                if_match: job.etag.as_deref(),
            };
            let result = client.get(get, Sink::Receive(job.lent)).await;
            if let Ok(out) = &result {
                reservation.shrink_to(out.body.len() as u64);
            }
            result.map(|out| (out, reservation))
        });
        let offset = job.range.map_or(0, |r| r.start);
        self.insert_slot(Slot {
            seq: job.seq,
            offset,
            request: job.request,
            outcome: Outcome::Running(AbortOnDrop(task)),
        });
    }

    /// Starts `job`'s download straight into `piece`, counted as running (and, through
    /// `writer`, as writing into the caller's memory) until it stops. Takes no reservation:
    /// the bytes land in memory the caller already has.
    pub(super) fn spawn_into(
        &self,
        job: Job,
        piece: Destination,
        writer: WriterGuard,
    ) -> AbortOnDrop<Result<GetOutput>> {
        let client = self.client.clone();
        let running = RunningGuard::enter(&self.running, &self.finished);
        AbortOnDrop(self.runtime.spawn(async move {
            // Dropped when the download ends or is aborted: then it no longer writes or runs.
            let _counted = (writer, running);
            if job.range.is_none() {
                return Err(Error::Internal("a part without a range".into()));
            }
            let request = &job.request;
            let target = client.target(&request.bucket, &request.key);
            let get = GetRequest {
                target: &target,
                range: job.range,
                if_match: job.etag.as_deref(),
            };
            client.get(get, Sink::Into(piece)).await
        }))
    }

    pub(super) fn insert_slot(&mut self, slot: Slot) {
        let key = (slot.seq, slot.offset);
        let at = self.slots.partition_point(|s| (s.seq, s.offset) <= key);
        self.slots.insert(at, slot);
    }

    /// Cancels every remaining request and job of object `seq`.
    pub(super) fn discard(&mut self, seq: u64) {
        self.lent_whole.retain(|(s, _)| *s != seq);
        self.jobs.retain(|j| j.seq != seq);
        while self.slots.front().is_some_and(|s| s.seq == seq) {
            self.slots.pop_front();
        }
    }

    /// Cancels every request and job except those of object `current`.
    pub(super) fn keep_only(&mut self, current: Option<u64>) {
        self.lent_whole.retain(|(s, _)| Some(*s) == current);
        self.jobs.retain(|j| Some(j.seq) == current);
        self.slots.retain(|s| Some(s.seq) == current);
    }
}
