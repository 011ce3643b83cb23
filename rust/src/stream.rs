//! The pipeline: keys in, objects out, in input order, with a bounded number of GETs in flight.
//!
//! Keys come from a listing (run as a background task) or are pushed by the caller. Each GET is
//! spawned on the runtime so downloads progress while the consumer is busy with earlier objects.
//! Dropping the stream aborts everything it started.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::OssClient;
use crate::error::{Error, Result};
use crate::list::Lister;

/// One object to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRequest {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Caller's tag carried through unchanged (the manifest label).
    pub label: String,
}

/// One fetched object.
#[derive(Debug, Clone)]
pub struct FetchedObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The label of its request.
    pub label: String,
    /// The whole body.
    pub body: Bytes,
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

enum Slot {
    Fetching(JoinHandle<Result<FetchedObject>>),
    Failed(Error),
}

/// Listed keys buffered ahead of the GETs: a few pages, so listing never stalls the pipeline
/// and a huge prefix never fills memory.
const LISTED_AHEAD: usize = 4096;

/// An ordered, bounded pipeline of GETs.
#[derive(Debug)]
pub struct ObjectStream {
    client: Arc<OssClient>,
    runtime: Handle,
    concurrency: usize,
    pending: VecDeque<ObjectRequest>,
    listed: Option<mpsc::Receiver<Result<ObjectRequest>>>,
    lister_task: Option<JoinHandle<()>>,
    in_flight: VecDeque<Slot>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Fetching(_) => f.write_str("Fetching"),
            Slot::Failed(e) => write!(f, "Failed({e})"),
        }
    }
}

impl ObjectStream {
    /// A stream of the objects the caller will [`push`](ObjectStream::push).
    pub fn new(client: Arc<OssClient>, runtime: Handle, concurrency: usize) -> Self {
        ObjectStream {
            client,
            runtime,
            concurrency: concurrency.max(1),
            pending: VecDeque::new(),
            listed: None,
            lister_task: None,
            in_flight: VecDeque::new(),
        }
    }

    /// A stream of this shard's objects under `prefix`, in listing order.
    pub fn from_prefix(
        client: Arc<OssClient>,
        runtime: Handle,
        concurrency: usize,
        bucket: &str,
        prefix: &str,
        shard: Shard,
    ) -> Self {
        let mut stream = ObjectStream::new(client.clone(), runtime.clone(), concurrency);
        let (tx, rx) = mpsc::channel(LISTED_AHEAD);
        let lister = Lister::new(bucket, prefix);
        let bucket = bucket.to_string();
        stream.lister_task = Some(runtime.spawn(list_into(client, lister, bucket, shard, tx)));
        stream.listed = Some(rx);
        stream
    }

    /// Queues one object after those already queued.
    pub fn push(&mut self, request: ObjectRequest) {
        self.pending.push_back(request);
    }

    /// Queues an error to be reported at this position (e.g. an invalid URI in the input).
    pub fn push_error(&mut self, error: Error) {
        self.fill();
        self.in_flight.push_back(Slot::Failed(error));
    }

    /// How many more requests the caller should push to keep the pipeline full.
    pub fn wants(&self) -> usize {
        (self.concurrency * 2).saturating_sub(self.pending.len() + self.in_flight.len())
    }

    /// The next object in input order, or `None` when everything queued has been returned.
    ///
    /// # Errors
    /// The object's GET error, a listing error, or an error queued with `push_error`.
    pub async fn next(&mut self) -> Option<Result<FetchedObject>> {
        loop {
            self.fill();
            if let Some(slot) = self.in_flight.pop_front() {
                let result = match slot {
                    Slot::Failed(e) => Err(e),
                    Slot::Fetching(task) => task.await.unwrap_or_else(|e| {
                        Err(Error::Internal(format!("download task failed: {e}")))
                    }),
                };
                // Refill only now: the popped request counted against the bound until it ended.
                self.fill();
                return Some(result);
            }
            let listed = self.listed.as_mut()?;
            match listed.recv().await {
                Some(Ok(request)) => self.pending.push_back(request),
                Some(Err(e)) => return Some(Err(e)),
                None => self.listed = None,
            }
        }
    }

    fn fill(&mut self) {
        while self.in_flight.len() < self.concurrency {
            if self.pending.is_empty() {
                match self.listed.as_mut().map(|rx| rx.try_recv()) {
                    Some(Ok(Ok(request))) => self.pending.push_back(request),
                    Some(Ok(Err(e))) => {
                        self.in_flight.push_back(Slot::Failed(e));
                        continue;
                    }
                    Some(Err(mpsc::error::TryRecvError::Disconnected)) => self.listed = None,
                    Some(Err(mpsc::error::TryRecvError::Empty)) | None => {}
                }
            }
            let Some(request) = self.pending.pop_front() else {
                return;
            };
            let client = self.client.clone();
            let task = self.runtime.spawn(async move {
                let out = client.get_object(&request.bucket, &request.key).await?;
                Ok(FetchedObject {
                    bucket: request.bucket,
                    key: request.key,
                    label: request.label,
                    body: out.body,
                })
            });
            self.in_flight.push_back(Slot::Fetching(task));
        }
    }
}

impl Drop for ObjectStream {
    fn drop(&mut self) {
        if let Some(task) = &self.lister_task {
            task.abort();
        }
        for slot in &self.in_flight {
            if let Slot::Fetching(task) = slot {
                task.abort();
            }
        }
    }
}

async fn list_into(
    client: Arc<OssClient>,
    mut lister: Lister,
    bucket: String,
    shard: Shard,
    tx: mpsc::Sender<Result<ObjectRequest>>,
) {
    let mut position = 0usize;
    loop {
        let page = match lister.next_page(&client).await {
            Ok(Some(page)) => page,
            Ok(None) => return,
            Err(e) => {
                // The receiver may be gone; then nobody needs the error either.
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        for object in page {
            let mine = shard.owns(position);
            position += 1;
            if !mine {
                continue;
            }
            let request = ObjectRequest {
                bucket: bucket.clone(),
                key: object.key,
                label: String::new(),
            };
            if tx.send(Ok(request)).await.is_err() {
                return;
            }
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
