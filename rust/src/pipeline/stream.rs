//! The pipeline: objects in, bytes out, in input order, bounded in requests and in bytes.
//!
//! Objects come from a listing (a background task) or are pushed by the caller. Each is fetched
//! as one GET or, when larger than the part size, as ranged GETs of that size, each spawned on the
//! runtime so downloads progress while the consumer is busy. At most `concurrency` requests run
//! at once, every request first reserves its bytes from the process [`Budget`], and results wait
//! (holding their reservation) until the consumer takes them. The consumer reads an object's
//! first part with [`ObjectStream::next_object`] and the rest with [`ObjectStream::next_part`];
//! moving to the next object cancels what is left of the current one. Dropping the stream
//! cancels everything.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::memory::budget::{Budget, Reservation};
use crate::memory::chunks::Chunks;
use crate::memory::destination::{Destination, Writers};
use crate::memory::lent::Lent;
use crate::ops::get::{ByteRange, GetOutput};
use crate::ops::list::Lister;

/// One object to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRequest {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Caller's tag carried through unchanged (the manifest label).
    pub label: String,
    /// Size when known (from a listing); `None` learns it from the first response.
    pub size: Option<u64>,
    /// ETag when known, so every part comes from the same version.
    pub etag: Option<String>,
}

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
    /// ETag.
    pub etag: String,
    /// Bytes from offset 0; shorter than `size` when more parts follow.
    pub first: Part,
}

/// Which share of a listing this stream takes: object `i` belongs to shard `i % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This stream's index, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Everything.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    fn owns(&self, position: usize) -> bool {
        position % self.count.max(1) == self.index
    }
}

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

enum Queued {
    Object(ObjectRequest, Option<Lent>),
    Error(Error),
}

struct Job {
    seq: u64,
    request: Arc<ObjectRequest>,
    range: Option<ByteRange>,
    reserve: u64,
    etag: Option<String>,
    /// Memory lent for the whole body (see [`ObjectStream::lend`]).
    lent: Option<Lent>,
}

type Fetched = Result<(GetOutput, Reservation)>;

/// Counts a request as running from spawn until its future completes or is dropped.
struct RunningGuard {
    running: Arc<AtomicUsize>,
    finished: Arc<Notify>,
}

impl RunningGuard {
    fn enter(running: Arc<AtomicUsize>, finished: Arc<Notify>) -> Self {
        running.fetch_add(1, Ordering::AcqRel);
        RunningGuard { running, finished }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.finished.notify_waiters();
    }
}

/// See [`ObjectStream::arm_wakeups`].
struct Wakeups {
    finished: Pin<Box<OwnedNotified>>,
    released: Pin<Box<OwnedNotified>>,
}

impl Wakeups {
    async fn wait(self) {
        tokio::select! {
            _ = self.finished => {}
            _ = self.released => {}
        }
    }
}

/// A spawned request, cancelled when dropped: with its slot (consumer moved on, stream dropped,
/// the wait for it interrupted by Ctrl-C) or with the read it writes for.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        // The task owns its reservation, if any: aborting drops it and gives the bytes back.
        self.0.abort();
    }
}

enum Outcome {
    Running(AbortOnDrop<Fetched>),
    Failed(Error),
}

struct Slot {
    seq: u64,
    offset: u64,
    request: Arc<ObjectRequest>,
    outcome: Outcome,
}

/// Objects whose whole bodies are written into lent memory are at least this long: smaller
/// ones keep the socket's pieces (no copy in Rust, see [`crate::memory::chunks`]). Lending 100 KiB
/// objects too cost more than it saved (one process: −10 % MB/s, +20 % CPU/GB).
pub(super) const LEND_FROM: u64 = crate::memory::buffer_pool::POOLED_FROM as u64;

/// Objects lent memory beyond those the budget has room for now: they start as soon as the
/// objects handed to Python meanwhile give their share back.
pub(super) const LEND_BEYOND_ROOM: usize = 2;

/// Objects looked at per [`ObjectStream::lend`] call, at most.
const LEND_WALK: usize = 64;

/// Listing pages buffered ahead of the GETs (up to 1,000 objects each): a few, so listing
/// never stalls the pipeline and a huge prefix never fills memory. A page travels whole, so
/// the stream learns of all its objects at once (and can lend memory to the first of them).
const PAGES_AHEAD: usize = 4;

/// An ordered, bounded pipeline of GETs.
pub struct ObjectStream {
    client: Arc<OssClient>,
    runtime: Handle,
    budget: Arc<Budget>,
    settings: StreamSettings,
    queued: VecDeque<Queued>,
    listed: Option<mpsc::Receiver<Vec<Queued>>>,
    lister_task: Option<JoinHandle<()>>,
    jobs: VecDeque<Job>,
    slots: VecDeque<Slot>,
    running: Arc<AtomicUsize>,
    finished: Arc<Notify>,
    next_seq: u64,
    current: Option<u64>,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("settings", &self.settings)
            .field("queued", &self.queued.len())
            .field("jobs", &self.jobs.len())
            .field("slots", &self.slots.len())
            .field("running", &self.running.load(Ordering::Relaxed))
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
        // A part must fit in the budget, or it could never be reserved.
        let part_size = settings.part_size.clamp(1, (budget.capacity() / 2).max(1));
        ObjectStream {
            client,
            runtime,
            budget,
            settings: StreamSettings {
                concurrency: settings.concurrency.max(1),
                part_size,
                lookahead: settings.lookahead.max(settings.concurrency).max(1),
            },
            queued: VecDeque::new(),
            listed: None,
            lister_task: None,
            jobs: VecDeque::new(),
            slots: VecDeque::new(),
            running: Arc::new(AtomicUsize::new(0)),
            finished: Arc::new(Notify::new()),
            next_seq: 0,
            current: None,
        }
    }

    /// A stream of this shard's objects under `prefix`, in listing order.
    pub fn from_prefix(
        client: Arc<OssClient>,
        runtime: Handle,
        budget: Arc<Budget>,
        settings: StreamSettings,
        bucket: &str,
        prefix: &str,
        shard: Shard,
    ) -> Self {
        let mut stream = ObjectStream::new(client.clone(), runtime.clone(), budget, settings);
        let (tx, rx) = mpsc::channel(PAGES_AHEAD);
        let lister = Lister::new(bucket, prefix);
        let bucket = bucket.to_string();
        stream.lister_task = Some(runtime.spawn(list_into(client, lister, bucket, shard, tx)));
        stream.listed = Some(rx);
        stream
    }

    /// Queues one object after those already queued.
    pub fn push(&mut self, request: ObjectRequest) {
        self.queued.push_back(Queued::Object(request, None));
    }

    /// Queues an error to be reported at this position (e.g. an invalid URI in the input).
    pub fn push_error(&mut self, error: Error) {
        self.queued.push_back(Queued::Error(error));
    }

    /// How many more objects the caller should push to keep the pipeline busy.
    pub fn wants(&self) -> usize {
        let queued = self.queued.len() + self.slots.len();
        (self.settings.concurrency * 2).saturating_sub(queued)
    }

    /// Waits, at the start, until the first object to fetch is known (the listing's first
    /// answer), so that memory can be lent for the first requests too.
    pub async fn wait_for_input(&mut self) {
        if !(self.queued.is_empty() && self.jobs.is_empty() && self.slots.is_empty()) {
            return;
        }
        self.receive_listed().await;
    }

    /// Waits for the next page of the listing and queues its objects; false once it has ended.
    async fn receive_listed(&mut self) -> bool {
        let Some(listed) = self.listed.as_mut() else {
            return false;
        };
        match listed.recv().await {
            Some(page) => {
                self.queued.extend(page);
                true
            }
            None => {
                self.listed = None;
                false
            }
        }
    }

    /// Queues the objects of a page of the listing that has already arrived; false when none
    /// has.
    fn take_listed(&mut self) -> bool {
        match self.listed.as_mut().map(|rx| rx.try_recv()) {
            Some(Ok(page)) => {
                self.queued.extend(page);
                true
            }
            Some(Err(mpsc::error::TryRecvError::Disconnected)) => {
                self.listed = None;
                false
            }
            _ => false,
        }
    }

    /// Asks for memory to write whole bodies into: `provide(len)` is called for each object
    /// next in line (within the room the budget and the lookahead have now, and
    /// [`LEND_BEYOND_ROOM`] objects more) that is fetched whole — known size, at most one
    /// part — and at least [`LEND_FROM`] bytes long. Its GET writes the body into what `provide` returns, and the object's first
    /// part comes back in it ([`Chunks::lent`](crate::memory::chunks::Chunks::lent)).
    pub fn lend(&mut self, mut provide: impl FnMut(usize) -> Option<Lent>) {
        let part = self.settings.part_size;
        let mut room = self.budget.available();
        let mut free_slots = self.settings.lookahead.saturating_sub(self.slots.len());
        let mut beyond = LEND_BEYOND_ROOM;
        // Called once per object: small objects, never lent, must not cost a long walk each.
        let mut walk = LEND_WALK;
        let mut in_line = |reserve: u64| {
            if walk == 0 {
                return false;
            }
            walk -= 1;
            if room > 0 && free_slots > 0 {
                room = room.saturating_sub(i64::try_from(reserve).unwrap_or(i64::MAX));
                free_slots -= 1;
                true
            } else if beyond > 0 {
                beyond -= 1;
                true
            } else {
                false
            }
        };
        let wants = |size: u64| (LEND_FROM..=part).contains(&size);
        for job in self.jobs.iter_mut() {
            if !in_line(job.reserve) {
                return;
            }
            if job.range.is_none() && job.lent.is_none() && wants(job.reserve) {
                job.lent = usize::try_from(job.reserve).ok().and_then(&mut provide);
            }
        }
        let mut at = 0;
        loop {
            // Further objects already listed, taken in order (as `expand_next` would).
            if at == self.queued.len() && !self.take_listed() {
                return;
            }
            if let Some(Queued::Object(request, lent)) = self.queued.get_mut(at) {
                let size = request.size;
                if !in_line(size.unwrap_or(part)) {
                    return;
                }
                if let Some(size) = size.filter(|s| lent.is_none() && wants(*s)) {
                    *lent = usize::try_from(size).ok().and_then(&mut provide);
                }
            }
            at += 1;
        }
    }

    /// The next object's first part, in input order; `None` when everything queued has been
    /// returned. What is left of the previous object is cancelled.
    ///
    /// # Errors
    /// The object's GET error, a listing error, or an error queued with `push_error`.
    pub async fn next_object(&mut self) -> Option<Result<ObjectStart>> {
        if let Some(previous) = self.current.take() {
            self.discard(previous);
        }
        loop {
            let wakeups = self.arm_wakeups();
            self.fill();
            if let Some(slot) = self.slots.pop_front() {
                self.current = Some(slot.seq);
                let result = self.settle(slot).await;
                return Some(result.map(|(seq, request, out, reservation)| {
                    self.start(seq, request, out, reservation)
                }));
            }
            if !self.jobs.is_empty() || !self.queued.is_empty() {
                // Out of budget (held by other streams of this process): wait for a release.
                wakeups.wait().await;
                continue;
            }
            self.listed.as_ref()?;
            self.receive_listed().await;
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
        loop {
            let wakeups = self.arm_wakeups();
            self.fill();
            if self.slots.front().is_some_and(|s| s.seq == seq) {
                let slot = self.slots.pop_front()?;
                let result = self.settle(slot).await;
                self.fill();
                return Some(result.map(|(_, _, out, reservation)| Part {
                    body: out.body,
                    offset: out.offset,
                    _reservation: Some(reservation),
                }));
            }
            if self.jobs.front().is_none_or(|j| j.seq != seq) {
                return None;
            }
            wakeups.wait().await;
        }
    }

    /// Reads the rest of object `seq`, from offset `from` (where the parts not yet taken
    /// begin) to its end, into `dst`. Parts already fetched or under way are copied in as they
    /// complete; parts not yet started are downloaded straight into their place in `dst`, ahead
    /// of any later object's, with no buffer or budget reservation of their own. Returns the
    /// bytes written; 0, with nothing taken, when the stream has moved past `seq` or `from` and
    /// the length of `dst` are not what is left of it.
    ///
    /// Every download given a piece of `dst` counts itself in `writers` while it runs: the
    /// caller must wait for [`Writers::stopped`] before it releases the memory, after an error
    /// or after dropping this future (which aborts them) as well.
    ///
    /// # Errors
    /// The first failing part's error; the rest of the object is then cancelled.
    pub async fn read_rest_into(
        &mut self,
        seq: u64,
        from: u64,
        dst: Destination,
        writers: &Arc<Writers>,
    ) -> Result<u64> {
        let Some((bounds, started)) = self.rest_bounds(seq, from, dst.len() as u64) else {
            return Ok(0);
        };
        let total = dst.len() as u64;
        let mut pieces = Vec::with_capacity(bounds.len());
        let mut rest = dst;
        for (start, end) in &bounds {
            let (piece, tail) = rest.split((end - start) as usize);
            pieces.push(piece);
            rest = tail;
        }
        let mut pieces = pieces.into_iter();
        let copied: Vec<Destination> = pieces.by_ref().take(started).collect();
        let not_started: Vec<Job> = self.jobs.drain(..bounds.len() - started).collect();
        let mut direct = Vec::with_capacity(not_started.len());
        for (job, piece) in not_started.into_iter().zip(pieces) {
            direct.push(self.spawn_into(job, piece, writers));
        }
        for mut piece in copied {
            let Some(slot) = self.slots.pop_front() else {
                return Err(Error::Internal("a started part went missing".into()));
            };
            let (_, request, out, _reservation) = self.settle(slot).await?;
            if out.body.len() != piece.len() {
                self.discard(seq);
                return Err(Error::Protocol {
                    target: format!("oss://{}/{}", request.bucket, request.key),
                    reason: format!(
                        "the part at offset {} has {} bytes, {} expected",
                        out.offset,
                        out.body.len(),
                        piece.len()
                    ),
                });
            }
            out.body.copy_to(0, piece.as_mut_slice());
        }
        for mut task in direct {
            let joined = loop {
                // Later objects' requests start as these finish.
                let wakeups = self.arm_wakeups();
                self.fill();
                tokio::select! {
                    joined = &mut task.0 => break joined,
                    _ = wakeups.wait() => {}
                }
            };
            let done = joined
                .unwrap_or_else(|e| Err(Error::Internal(format!("download task failed: {e}"))));
            if let Err(e) = done {
                self.discard(seq);
                return Err(e);
            }
        }
        Ok(total)
    }

    /// `(start, end)` of every part of `seq` not yet taken — started ones (slots) first, then
    /// the rest (jobs) — and how many are started, when they run from `from` to exactly
    /// `from + len`.
    fn rest_bounds(&self, seq: u64, from: u64, len: u64) -> Option<(Vec<(u64, u64)>, usize)> {
        if self.current != Some(seq) || len == 0 {
            return None;
        }
        let mut starts: Vec<u64> = self
            .slots
            .iter()
            .take_while(|s| s.seq == seq)
            .map(|s| s.offset)
            .collect();
        let started = starts.len();
        let mut last_end = None;
        for job in self.jobs.iter().take_while(|j| j.seq == seq) {
            let range = job.range?;
            starts.push(range.start);
            last_end = Some(range.end);
        }
        let end = from.checked_add(len)?;
        let mut bounds = Vec::with_capacity(starts.len());
        for (i, &start) in starts.iter().enumerate() {
            let next = starts.get(i + 1).copied().unwrap_or(end);
            if next <= start {
                return None;
            }
            bounds.push((start, next));
        }
        let ends_right = last_end.is_none_or(|e| e == end);
        (starts.first() == Some(&from) && ends_right).then_some((bounds, started))
    }

    /// Starts job's download straight into `piece`, counted as running and as a writer.
    fn spawn_into(
        &self,
        job: Job,
        piece: Destination,
        writers: &Arc<Writers>,
    ) -> AbortOnDrop<Result<()>> {
        let client = self.client.clone();
        let writer = writers.enter();
        let running = RunningGuard::enter(self.running.clone(), self.finished.clone());
        AbortOnDrop(self.runtime.spawn(async move {
            // Dropped when the download ends or is aborted: then it no longer writes or runs.
            let _counted = (writer, running);
            let Some(range) = job.range else {
                return Err(Error::Internal("a part without a range".into()));
            };
            let request = &job.request;
            client
                .get_range_into(
                    &request.bucket,
                    &request.key,
                    range,
                    job.etag.as_deref(),
                    piece,
                )
                .await
        }))
    }

    /// Wake-ups armed before the pipeline is looked at, so none is lost between the look and
    /// the wait: one of this stream's requests ended, or some budget came back.
    fn arm_wakeups(&self) -> Wakeups {
        let mut finished = Box::pin(self.finished.clone().notified_owned());
        let mut released = Box::pin(self.budget.released());
        finished.as_mut().enable();
        released.as_mut().enable();
        Wakeups { finished, released }
    }

    /// Waits for a slot's result; on failure the rest of its object is cancelled.
    async fn settle(
        &mut self,
        slot: Slot,
    ) -> Result<(u64, Arc<ObjectRequest>, GetOutput, Reservation)> {
        let Slot {
            seq,
            request,
            outcome,
            ..
        } = slot;
        let fetched = match outcome {
            Outcome::Failed(e) => Err(e),
            Outcome::Running(mut task) => loop {
                // While the head is slow (a retry backing off, a large part), keep starting the
                // requests behind it as others finish, or the pipeline drains behind one object.
                let wakeups = self.arm_wakeups();
                self.fill();
                tokio::select! {
                    joined = &mut task.0 => break joined.unwrap_or_else(|e| {
                        Err(Error::Internal(format!("download task failed: {e}")))
                    }),
                    _ = wakeups.wait() => {}
                }
            },
        };
        match fetched {
            Ok((out, reservation)) => Ok((seq, request, out, reservation)),
            Err(e) => {
                self.discard(seq);
                Err(e)
            }
        }
    }

    fn start(
        &mut self,
        seq: u64,
        request: Arc<ObjectRequest>,
        out: GetOutput,
        reservation: Reservation,
    ) -> ObjectStart {
        let fetched_to = out.offset + out.body.len() as u64;
        if request.size.is_none() && out.object_size > fetched_to {
            self.schedule_parts(
                seq,
                &request,
                fetched_to,
                out.object_size,
                Some(out.etag.clone()),
            );
        }
        self.fill();
        ObjectStart {
            seq,
            bucket: request.bucket.clone(),
            key: request.key.clone(),
            label: request.label.clone(),
            size: out.object_size.max(fetched_to),
            etag: out.etag,
            first: Part {
                body: out.body,
                offset: out.offset,
                _reservation: Some(reservation),
            },
        }
    }

    /// Turns queued objects into jobs and jobs into running requests, within the limits.
    fn fill(&mut self) {
        loop {
            if self.jobs.is_empty() && !self.expand_next() {
                return;
            }
            let Some(job) = self.jobs.front() else {
                return;
            };
            let for_current = Some(job.seq) == self.current;
            // Tasks backing off between attempts count here too; the client's adaptive gate
            // decides how many of them may have a request on the wire.
            let width = self.settings.concurrency;
            if self.running.load(Ordering::Acquire) >= width
                || (!for_current && self.slots.len() >= self.settings.lookahead)
            {
                return;
            }
            let reservation = match self.budget.try_reserve(job.reserve) {
                Some(r) => r,
                // Nothing of ours is in flight or buffered: take one part on credit.
                None if self.slots.is_empty() => self.budget.force_reserve(job.reserve),
                None => return,
            };
            let Some(job) = self.jobs.pop_front() else {
                return;
            };
            self.spawn(job, reservation);
        }
    }

    /// Moves the next queued object (or error) into jobs; false when nothing is queued.
    fn expand_next(&mut self) -> bool {
        if self.queued.is_empty() {
            self.take_listed();
        }
        let Some(item) = self.queued.pop_front() else {
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
                match request.size {
                    Some(size) if size > part => {
                        let etag = request.etag.clone();
                        self.schedule_parts(seq, &request, 0, size, etag);
                    }
                    Some(size) => self.jobs.push_back(Job {
                        seq,
                        request,
                        range: None,
                        reserve: size,
                        etag: None,
                        lent,
                    }),
                    None => self.jobs.push_back(Job {
                        seq,
                        request,
                        range: Some(ByteRange {
                            start: 0,
                            end: part,
                        }),
                        reserve: part,
                        etag: None,
                        lent: None,
                    }),
                }
            }
        }
        true
    }

    /// Adds jobs for bytes `from..to` of object `seq`, in order, before any later object's.
    fn schedule_parts(
        &mut self,
        seq: u64,
        request: &Arc<ObjectRequest>,
        from: u64,
        to: u64,
        etag: Option<String>,
    ) {
        let at = self.jobs.partition_point(|j| j.seq <= seq);
        let whole = ByteRange {
            start: from,
            end: to,
        };
        for (i, range) in whole.parts(self.settings.part_size).enumerate() {
            let job = Job {
                seq,
                request: request.clone(),
                range: Some(range),
                reserve: range.end - range.start,
                etag: etag.clone(),
                lent: None,
            };
            self.jobs.insert(at + i, job);
        }
    }

    fn spawn(&mut self, job: Job, mut reservation: Reservation) {
        let client = self.client.clone();
        let running = self.running.clone();
        let finished = self.finished.clone();
        let request = job.request.clone();
        let running = RunningGuard::enter(running, finished);
        let task = self.runtime.spawn(async move {
            // Dropped when the request ends or is aborted: either way it no longer runs.
            let _running = running;
            let result = client
                .get_range_lent(
                    &request.bucket,
                    &request.key,
                    job.range,
                    job.etag.as_deref(),
                    job.lent,
                )
                .await;
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

    fn insert_slot(&mut self, slot: Slot) {
        let key = (slot.seq, slot.offset);
        let at = self.slots.partition_point(|s| (s.seq, s.offset) <= key);
        self.slots.insert(at, slot);
    }

    /// Stops everything except the rest of the current object, which a reader may still want:
    /// the consumer has gone (its loop ended or broke), so nothing after it will be read.
    pub fn close(&mut self) {
        if let Some(task) = self.lister_task.take() {
            task.abort();
        }
        self.listed = None;
        self.queued.clear();
        let current = self.current;
        self.jobs.retain(|j| Some(j.seq) == current);
        self.slots.retain(|s| Some(s.seq) == current);
    }

    /// Cancels every remaining request and job of object `seq`.
    fn discard(&mut self, seq: u64) {
        self.jobs.retain(|j| j.seq != seq);
        while self.slots.front().is_some_and(|s| s.seq == seq) {
            self.slots.pop_front();
        }
    }
}

impl Drop for ObjectStream {
    fn drop(&mut self) {
        if let Some(task) = &self.lister_task {
            task.abort();
        }
    }
}

async fn list_into(
    client: Arc<OssClient>,
    mut lister: Lister,
    bucket: String,
    shard: Shard,
    tx: mpsc::Sender<Vec<Queued>>,
) {
    let mut position = 0usize;
    loop {
        let page = match lister.next_page(&client).await {
            Ok(Some(page)) => page,
            Ok(None) => return,
            Err(e) => {
                // The receiver may be gone; then nobody needs the error either.
                let _ = tx.send(vec![Queued::Error(e)]).await;
                return;
            }
        };
        let mut mine = Vec::with_capacity(page.len() / shard.count.max(1) + 1);
        for object in page {
            let owned = shard.owns(position);
            position += 1;
            if !owned {
                continue;
            }
            let request = ObjectRequest {
                bucket: bucket.clone(),
                key: object.key,
                label: String::new(),
                size: Some(object.size),
                etag: Some(object.etag).filter(|e| !e.is_empty()),
            };
            mine.push(Queued::Object(request, None));
        }
        if !mine.is_empty() && tx.send(mine).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_partition_positions() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        for position in 0..100 {
            let owners = shards.iter().filter(|s| s.owns(position)).count();
            assert_eq!(owners, 1, "position {position}");
        }
        assert!((0..10).all(|p| Shard::ALL.owns(p)));
    }
}
