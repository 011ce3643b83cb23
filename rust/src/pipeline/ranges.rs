//! Byte ranges of one object, fetched ahead and handed over in order: how tar datasets read
//! runs of members (one ranged GET per run, many runs in flight). The ranges in flight are
//! bounded by a count and by the dataset's byte budget, like the object stream's requests; a
//! range handed over leaves the budget (the caller holds it now, as it holds a returned object).
//! Every range is pinned to one version of the object (`If-Match`).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::memory::budget::{Budget, Reservation};
use crate::memory::chunks::Chunks;
use crate::ops::get::{GetRequest, Sink};
use crate::ops::range::ByteRange;
use crate::protocol::Target;

/// A fetch started: its bytes, and the budget they hold until handed over.
type Running = JoinHandle<(Result<Chunks>, Reservation)>;

/// Ranges of one object, fetched `concurrency` at a time within the budget, in order.
#[derive(Debug)]
pub(crate) struct RangeStream {
    client: Arc<OssClient>,
    runtime: Handle,
    budget: Arc<Budget>,
    target: Arc<Target>,
    if_match: Option<Arc<str>>,
    concurrency: usize,
    waiting: VecDeque<ByteRange>,
    running: VecDeque<Running>,
}

impl RangeStream {
    pub(crate) fn new(
        client: Arc<OssClient>,
        runtime: Handle,
        budget: Arc<Budget>,
        target: Target,
        if_match: Option<String>,
        ranges: Vec<ByteRange>,
        concurrency: usize,
    ) -> Self {
        RangeStream {
            client,
            runtime,
            budget,
            target: Arc::new(target),
            if_match: if_match.map(Arc::from),
            concurrency: concurrency.max(1),
            waiting: ranges.into(),
            running: VecDeque::new(),
        }
    }

    /// Starts fetches while the count and the budget allow. The first in line always starts
    /// when nothing runs, over budget if need be, so one range larger than the budget is still
    /// read (as the object stream does with one part).
    pub(crate) fn start_more(&mut self) {
        while self.running.len() < self.concurrency {
            let Some(&range) = self.waiting.front() else {
                return;
            };
            let reservation = match self.budget.try_reserve(range.len()) {
                Some(r) => r,
                None if self.running.is_empty() => self.budget.force_reserve(range.len()),
                None => return,
            };
            self.waiting.pop_front();
            let client = self.client.clone();
            let target = self.target.clone();
            let if_match = self.if_match.clone();
            self.running.push_back(self.runtime.spawn(async move {
                let request = GetRequest {
                    target: &target,
                    range: Some(range),
                    if_match: if_match.as_deref(),
                };
                let body = client.get(request, Sink::Receive(None)).await;
                (body.map(|out| out.body), reservation)
            }));
        }
    }

    /// The next range's bytes; `None` when all have been handed over.
    pub(crate) async fn next(&mut self) -> Option<Result<Chunks>> {
        self.start_more();
        let task = self.running.pop_front()?;
        let fetched = match task.await {
            Ok((body, _released_on_handover)) => body,
            Err(e) => Err(Error::Internal(format!("a range fetch task failed: {e}"))),
        };
        self.start_more();
        Some(fetched)
    }

    /// Stops every fetch (the caller is done).
    pub(crate) fn close(&mut self) {
        self.waiting.clear();
        for task in self.running.drain(..) {
            task.abort();
        }
    }
}

impl Drop for RangeStream {
    fn drop(&mut self) {
        self.close();
    }
}
