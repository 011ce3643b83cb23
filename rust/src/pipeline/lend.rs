//! Lending: memory Python provides for whole bodies before their GETs start, so reading such
//! an object copies nothing (the download writes into the `bytes` that `read()` returns).
//!
//! Objects fetched whole (known size, at most one part) are lent memory. Through reqwest only
//! those at least [`LARGE_BODY`] long: hyper reads every body into its own buffer first, and
//! keeping its pieces costs less than copying them into lent memory. Our own HTTP path reads
//! bodies straight into the lent memory, so there every size is lent and a small object costs
//! no copy at all. Only objects within reach are lent — those the budget and the lookahead
//! have room for now, plus [`LEND_BEYOND_ROOM`] — so lent memory stays within about what the
//! budget would hold anyway.
//!
//! Large objects (several parts, up to [`LARGE_LENT_BUDGETS`] budgets long) are lent memory
//! for the whole object too, each part written into its piece, while the consumer reads large
//! objects whole (`read_whole`): then no part goes through a part buffer, and a new process
//! touches no memory but its results. Parts still run within the budget, so only the bytes
//! fetched so far are resident. A consumer that takes a large object part by part
//! (`next_part`) would keep the whole object resident until done with it: the first time it
//! does, lending large objects stops for the stream ([`ObjectStream::stop_lending_large`]).

use super::input::Queued;
use super::stream::ObjectStream;
use crate::memory::lent::Lent;
use crate::memory::LARGE_BODY;

/// Objects lent memory beyond those the budget has room for now: they start as soon as the
/// objects handed to Python meanwhile give their share back.
const LEND_BEYOND_ROOM: usize = 2;

/// Large objects are lent memory when at most this many budgets long: a consumer that turns out
/// to read them part by part holds at most that much of one at once.
const LARGE_LENT_BUDGETS: u64 = 2;

/// Objects looked at per [`ObjectStream::lend`] call, at most: it is called once per object,
/// and streams of small objects (never lent) must not pay a long walk each time.
const LEND_WALK: usize = 64;

/// Which objects are within reach of lending, walked in order.
struct Reach {
    room: i64,
    free_slots: usize,
    beyond: usize,
    walk: usize,
}

impl Reach {
    /// Whether the next object in line, reserving `reserve` bytes, is within reach.
    fn next(&mut self, reserve: u64) -> bool {
        if self.walk == 0 {
            return false;
        }
        self.walk -= 1;
        if self.room > 0 && self.free_slots > 0 {
            self.room = self
                .room
                .saturating_sub(i64::try_from(reserve).unwrap_or(i64::MAX));
            self.free_slots -= 1;
            true
        } else if self.beyond > 0 {
            self.beyond -= 1;
            true
        } else {
            false
        }
    }
}

impl ObjectStream {
    /// Asks for memory to write whole bodies into: `provide(len)` is called for each object
    /// next in line that is within reach and fetched whole. Its GET writes the body into what
    /// `provide` returns, and the object's first part comes back in it
    /// ([`Chunks::lent`](crate::memory::chunks::Chunks::lent)).
    pub(crate) fn lend(&mut self, mut provide: impl FnMut(usize) -> Option<Lent>) {
        let s = &mut self.schedule;
        let part = s.settings.part_size;
        let mut reach = Reach {
            room: s.budget.available(),
            free_slots: s.settings.lookahead.saturating_sub(s.slots.len()),
            beyond: LEND_BEYOND_ROOM,
            walk: LEND_WALK,
        };
        let smallest = if s.client.reads_in_place() {
            1
        } else {
            LARGE_BODY as u64
        };
        let largest = if self.lend_large {
            s.budget.capacity().saturating_mul(LARGE_LENT_BUDGETS)
        } else {
            part
        };
        let wants_whole = |size: u64| (smallest..=part).contains(&size);
        for job in s.jobs.iter_mut() {
            if !reach.next(job.reserve) {
                return;
            }
            if job.range.is_none() && job.lent.is_none() && wants_whole(job.reserve) {
                job.lent = usize::try_from(job.reserve).ok().and_then(&mut provide);
            }
        }
        // Further objects already queued or listed, taken in order (as scheduling will).
        let mut at = 0;
        while let Some(item) = self.input.get_mut(at) {
            at += 1;
            let Queued::Object(request, lent) = item else {
                continue;
            };
            let size = request.size;
            if !reach.next(size.unwrap_or(part)) {
                return;
            }
            if let Some(size) = size.filter(|s| lent.is_none() && (smallest..=largest).contains(s))
            {
                *lent = usize::try_from(size).ok().and_then(&mut provide);
            }
        }
    }
}

impl ObjectStream {
    /// From now on, while the consumer is on a large object lent whole, later objects' requests
    /// wait until it moves on. For a stream beside others, one per DataLoader worker: the
    /// workers already fetch objects side by side, and a worker that fetches its next object
    /// while its consumer still holds the current one lands it in fresh memory, where it would
    /// otherwise reuse the pages the current one gives back. On a VM that hands freed memory
    /// back to its host, a first touch costs a fault the host serves: two workers doing so read
    /// 4 x 256 MiB about 1.4x slower (BENCHMARKS.md, "Issue 17").
    pub fn one_large_at_a_time(&mut self) {
        self.schedule.one_large_at_a_time = true;
    }

    /// The consumer takes large objects part by part: lends them no more memory, and takes back
    /// what was lent to those not started, so that parts it has used can be let go.
    pub(crate) fn stop_lending_large(&mut self) {
        if !self.lend_large {
            return;
        }
        self.lend_large = false;
        let part = self.schedule.settings.part_size;
        self.schedule.lent_whole.clear();
        for job in self.schedule.jobs.iter_mut().filter(|j| j.range.is_some()) {
            job.lent = None;
        }
        for item in self.input.queued_mut() {
            if let Queued::Object(request, lent) = item {
                if request.size.is_some_and(|size| size > part) {
                    *lent = None;
                }
            }
        }
    }
}
