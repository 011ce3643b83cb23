//! What the pipeline is asked to fetch: objects pushed by the caller, or a listing that runs
//! as a background task a few pages ahead.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::http::client::OssClient;
use crate::memory::lent::Lent;
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

/// Which share of a listing this stream takes: object `i` belongs to shard `i % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// This stream's index, `0..count`.
    pub(crate) index: usize,
    /// Number of shards.
    pub(crate) count: usize,
    /// Objects of this share passed over unfetched: those a resumed epoch has already had.
    pub(crate) skip: usize,
}

impl Shard {
    /// Everything.
    #[cfg(test)]
    pub(crate) const ALL: Shard = Shard {
        index: 0,
        count: 1,
        skip: 0,
    };

    fn owns(&self, position: usize) -> bool {
        position % self.count.max(1) == self.index
    }
}

/// An object waiting to be scheduled, or an error to report at its place in the order.
#[derive(Debug)]
pub(super) enum Queued {
    /// An object, with the memory lent for its whole body if any (see `lend`).
    Object(ObjectRequest, Option<Lent>),
    /// An error reported when the consumer reaches this position.
    Error(Error),
}

/// Listing pages buffered ahead of the GETs (up to 1,000 objects each): a few, so listing
/// never stalls the pipeline and a huge prefix never fills memory. A page travels whole, so
/// the stream learns of all its objects at once (and can lend memory to the first of them).
const PAGES_AHEAD: usize = 4;

/// The objects not yet scheduled, in order.
#[derive(Debug, Default)]
pub(super) struct Input {
    queued: VecDeque<Queued>,
    listed: Option<mpsc::Receiver<Vec<Queued>>>,
    lister: Option<JoinHandle<()>>,
}

impl Input {
    /// This shard's objects under `prefix`, listed by a task on `runtime`.
    pub(super) fn listing(
        client: Arc<OssClient>,
        runtime: &Handle,
        bucket: &str,
        prefix: &str,
        shard: Shard,
    ) -> Self {
        let (tx, rx) = mpsc::channel(PAGES_AHEAD);
        let lister = Lister::new(bucket, prefix);
        let task = runtime.spawn(list_into(client, lister, bucket.to_string(), shard, tx));
        Input {
            queued: VecDeque::new(),
            listed: Some(rx),
            lister: Some(task),
        }
    }

    pub(super) fn push(&mut self, item: Queued) {
        self.queued.push_back(item);
    }

    /// Items queued and not yet taken (pages still in the listing's channel not counted).
    pub(super) fn len(&self) -> usize {
        self.queued.len()
    }

    /// True when nothing is queued now (the listing may still send more).
    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// True while the listing may still send pages.
    pub(super) fn is_listing(&self) -> bool {
        self.listed.is_some()
    }

    /// Waits for the listing's next page and queues its objects; false once it has ended.
    pub(super) async fn receive_listed(&mut self) -> bool {
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

    /// Queues a page of the listing that has already arrived; false when none has.
    pub(super) fn take_listed(&mut self) -> bool {
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

    /// The next item, taking an arrived page first when the queue is empty.
    pub(super) fn pop(&mut self) -> Option<Queued> {
        if self.queued.is_empty() {
            self.take_listed();
        }
        self.queued.pop_front()
    }

    /// The `at`-th queued item, taking arrived pages until it exists; `None` past the end.
    pub(super) fn get_mut(&mut self, at: usize) -> Option<&mut Queued> {
        while at >= self.queued.len() {
            if !self.take_listed() {
                return None;
            }
        }
        self.queued.get_mut(at)
    }

    /// The objects queued so far (none is taken from the listing for this).
    pub(super) fn queued_mut(&mut self) -> impl Iterator<Item = &mut Queued> {
        self.queued.iter_mut()
    }

    /// Drops everything not yet taken and stops the listing.
    pub(super) fn close(&mut self) {
        if let Some(task) = self.lister.take() {
            task.abort();
        }
        self.listed = None;
        self.queued.clear();
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        if let Some(task) = &self.lister {
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
    let mut to_skip = shard.skip;
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
            if to_skip > 0 {
                to_skip -= 1;
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
        let shards: Vec<Shard> = (0..3)
            .map(|index| Shard {
                index,
                count: 3,
                skip: 0,
            })
            .collect();
        for position in 0..100 {
            let owners = shards.iter().filter(|s| s.owns(position)).count();
            assert_eq!(owners, 1, "position {position}");
        }
        assert!((0..10).all(|p| Shard::ALL.owns(p)));
    }
}
