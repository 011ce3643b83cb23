//! Reading the rest of the current object at once, into the caller's memory: parts already
//! fetched or under way are copied in as they complete, parts not yet started are downloaded
//! straight into their place (no part buffer, no budget reservation, no copy). Those count
//! as running, so later objects' requests wait for them; the pyo3 layer waits until every
//! download writing into the buffer has stopped before it returns (after errors and Ctrl-C
//! too), so Python never frees memory that is still being written.
//!
//! An object lent memory whole (see `lend`) needs neither: [`ObjectStream::read_whole`] waits
//! for its parts to land in place and hands the memory back.

use std::sync::Arc;

use super::input::ObjectRequest;
use super::schedule::Job;
use super::stream::ObjectStream;
use crate::error::{Error, Result};
use crate::memory::destination::{Destination, Writers};
use crate::memory::lent::Owner;
use crate::ops::get::GetOutput;

impl ObjectStream {
    /// Reads the rest of object `seq`, from offset `from` (where the parts not yet taken
    /// begin) to its end, into `dst`. Parts not yet started are fetched ahead of any later
    /// object's. Returns the bytes written; 0, with nothing taken, when the stream has moved
    /// past `seq` or `from` and the length of `dst` are not what is left of it.
    ///
    /// Every download given a piece of `dst` counts itself in `writers` while it runs: the
    /// caller must wait for [`Writers::stopped`] before it releases the memory, after an error
    /// or after dropping this future (which aborts them) as well.
    ///
    /// # Errors
    /// The first failing part's error; the rest of the object is then cancelled.
    pub(crate) async fn read_rest_into(
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
        let not_started: Vec<Job> = self.schedule.jobs.drain(..bounds.len() - started).collect();
        let mut direct = Vec::with_capacity(not_started.len());
        for (job, piece) in not_started.into_iter().zip(pieces) {
            let request = job.request.clone();
            let len = piece.len() as u64;
            direct.push((
                request,
                len,
                self.schedule.spawn_into(job, piece, writers.enter()),
            ));
        }
        for mut piece in copied {
            let Some(slot) = self.schedule.slots.pop_front() else {
                return Err(Error::Internal("a started part went missing".into()));
            };
            let (_, request, out, _reservation) = self.settle(slot).await?;
            if out.body.len() != piece.len() {
                return Err(self.wrong_length(seq, &request, &out, Some(piece.len())));
            }
            out.body.copy_to(0, piece.as_mut_slice());
            self.check_part(&request, out.offset, piece.len() as u64, out.crc)?;
        }
        // Joined in order, so the parts are checked in order however they finish; an error
        // here comes before the caller has the bytes.
        for (request, len, mut task) in direct {
            match self.join_refilling(&mut task).await {
                Ok(out) => self.check_part(&request, out.offset, len, out.crc)?,
                Err(e) => {
                    self.schedule.discard(seq);
                    return Err(e);
                }
            }
        }
        Ok(total)
    }

    /// The whole of object `seq` in the memory lent to it, once every part not yet taken has
    /// been written there and checked; `None`, with nothing taken, when it was not lent whole
    /// or the stream has moved past it. The owner comes back only after every download into
    /// the memory has ended.
    ///
    /// # Errors
    /// The first failing part's error; the rest of the object is then cancelled.
    pub(crate) async fn read_whole(&mut self, seq: u64) -> Result<Option<Owner>> {
        if self.current != Some(seq) {
            return Ok(None);
        }
        let s = &self.schedule;
        let Some(owner) = s
            .lent_whole
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, o)| o.clone())
        else {
            return Ok(None);
        };
        loop {
            let wakeups = self.schedule.arm_wakeups();
            self.fill();
            if self.schedule.slots.front().is_some_and(|s| s.seq == seq) {
                let Some(slot) = self.schedule.slots.pop_front() else {
                    continue;
                };
                let (_, request, out, _reservation) = self.settle(slot).await?;
                if out.body.lent().is_none() {
                    // Not written in place: a length other than its piece's.
                    return Err(self.wrong_length(seq, &request, &out, None));
                }
                self.check_part(&request, out.offset, out.body.len() as u64, out.crc)?;
            } else if self.schedule.jobs.front().is_some_and(|j| j.seq == seq) {
                wakeups.wait().await;
            } else {
                return Ok(Some(owner));
            }
        }
    }

    /// A part of object `seq` of another length than asked (`expected`, when known): cancels
    /// the rest of the object and names it.
    fn wrong_length(
        &mut self,
        seq: u64,
        request: &ObjectRequest,
        out: &GetOutput,
        expected: Option<usize>,
    ) -> Error {
        self.schedule.discard(seq);
        let expected = expected.map_or("another length".to_owned(), |n| format!("{n}"));
        Error::Protocol {
            target: self.schedule.client.target(&request.bucket, &request.key),
            reason: format!(
                "the part at offset {} has {} bytes, {expected} expected",
                out.offset,
                out.body.len()
            ),
        }
    }

    /// `(start, end)` of every part of `seq` not yet taken — started ones (slots) first, then
    /// the rest (jobs) — and how many are started, when they run from `from` to exactly
    /// `from + len`.
    fn rest_bounds(&self, seq: u64, from: u64, len: u64) -> Option<(Vec<(u64, u64)>, usize)> {
        if self.current != Some(seq) || len == 0 {
            return None;
        }
        let s = &self.schedule;
        let mut starts: Vec<u64> = s
            .slots
            .iter()
            .take_while(|s| s.seq == seq)
            .map(|s| s.offset)
            .collect();
        let started = starts.len();
        let mut last_end = None;
        for job in s.jobs.iter().take_while(|j| j.seq == seq) {
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
}
