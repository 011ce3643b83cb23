//! Uploads: bytes written in order become one object, atomically — the second direction of
//! data flow (caller's bytes → part buffers → concurrent UploadPart requests → Complete).
//!
//! - The target is replaced only when [`Upload::close`] completes: until then the old object is
//!   untouched. Any failure (a part failing after its retries, a CRC-64/XZ mismatch, Complete
//!   refused) aborts the upload (AbortMultipartUpload) before the error is returned, so no
//!   pending upload is left; so does [`Upload::abort`], and dropping an upload unclosed.
//! - A body that fits in one part goes as one PutObject: no multipart upload at all.
//! - Memory is bounded by the upload's byte budget (`uploadBufferSizeMB`): a part buffer is
//!   reserved before it is filled, and given back when its part is stored; `write` waits while
//!   the budget is spent. Bytes are copied once, from the caller's buffer into a part buffer
//!   (recycled through [`crate::memory::buffer_pool`]).
//! - Every part is checked against the CRC-64 the server states for it, and the completed
//!   object against the parts' CRCs combined.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::memory::budget::{Budget, Reservation};
use crate::memory::buffer_pool::{self, PooledBuf};
use crate::ops::multipart::{MultipartUpload, StoredPart};
use crate::ops::put::Stored;
use crate::protocol::Target;

/// How an upload is cut and how much of it may be in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UploadSettings {
    /// Bytes per part (`uploadIoSizeMB`); the last part may be shorter.
    pub(crate) part_size: usize,
    /// Parts in flight at most (`uploadConcurrency`).
    pub(crate) concurrency: usize,
    /// Bytes buffered or in flight at most (`uploadBufferSizeMB`); at least one part.
    pub(crate) buffer: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    Completed(Stored),
    Aborted,
}

/// One object being written.
pub(crate) struct Upload {
    client: Arc<OssClient>,
    runtime: Handle,
    target: Target,
    settings: UploadSettings,
    budget: Arc<Budget>,
    /// The part being filled, with the budget it holds.
    filling: Option<(PooledBuf, Reservation)>,
    /// The multipart upload, once a second part is needed.
    multipart: Option<MultipartUpload>,
    next_number: u32,
    running: JoinSet<Result<StoredPart>>,
    stored: Vec<StoredPart>,
    written: u64,
    state: State,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("target", &self.target)
            .field("written", &self.written)
            .field("parts", &(self.next_number.saturating_sub(1)))
            .field("state", &self.state)
            .finish()
    }
}

impl Upload {
    /// An upload of `target`; nothing is sent before the first part is full (or `close`).
    pub(crate) fn new(
        client: Arc<OssClient>,
        runtime: Handle,
        target: Target,
        settings: UploadSettings,
    ) -> Self {
        let part_size = settings.part_size.max(1);
        let buffer = settings.buffer.max(part_size as u64);
        // Part buffers are recycled up to the same amount.
        buffer_pool::keep_idle_up_to(buffer);
        Upload {
            client,
            runtime,
            target,
            settings: UploadSettings {
                part_size,
                concurrency: settings.concurrency.max(1),
                buffer,
            },
            budget: Budget::new(buffer),
            filling: None,
            multipart: None,
            next_number: 1,
            running: JoinSet::new(),
            stored: Vec::new(),
            written: 0,
            state: State::Open,
        }
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The object being written.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// Appends `data`, sending full parts as it goes; waits while the budget is spent.
    ///
    /// # Errors
    /// A part's failure (the upload is then aborted), or `InvalidInput` once the upload is
    /// closed or aborted.
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.check_open()?;
        let result = self.append(data).await;
        self.abort_on_error(result).await
    }

    /// Finishes the upload: the object now holds everything written (an empty object when
    /// nothing was). Returns what was stored.
    ///
    /// # Errors
    /// Any failure of the upload (which is then aborted: the old object stays).
    pub(crate) async fn close(&mut self) -> Result<Stored> {
        if let State::Completed(stored) = &self.state {
            return Ok(stored.clone());
        }
        self.check_open()?;
        let result = self.finish().await;
        let stored = self.abort_on_error(result).await?;
        self.state = State::Completed(stored.clone());
        Ok(stored)
    }

    /// Abandons the upload: parts in flight are cancelled and the multipart upload, if one was
    /// started, is aborted; the target keeps its old content. Does nothing once closed.
    ///
    /// # Errors
    /// AbortMultipartUpload's error (the upload may then remain until the bucket's lifecycle
    /// rules remove it).
    pub(crate) async fn abort(&mut self) -> Result<()> {
        if self.state != State::Open {
            return Ok(());
        }
        self.state = State::Aborted;
        self.filling = None;
        self.running.shutdown().await;
        match self.multipart.take() {
            Some(upload) => self.client.abort_upload(&self.target, &upload.id).await,
            None => Ok(()),
        }
    }

    fn check_open(&self) -> Result<()> {
        match self.state {
            State::Open => Ok(()),
            _ => Err(Error::invalid(
                "upload",
                &self.target.to_string(),
                "it is already closed or aborted",
            )),
        }
    }

    /// Returns `result`, aborting the upload first when it is an error.
    async fn abort_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            if let Err(e) = self.abort().await {
                log::warn!(
                    target: "osstorchconnector",
                    "could not abort the upload of {} after an error: {e}",
                    self.target
                );
            }
        }
        result
    }

    async fn append(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let part_size = self.settings.part_size;
            if self
                .filling
                .as_ref()
                .is_some_and(|(b, _)| b.len() == part_size)
            {
                // Full, and more is coming: it is not the last part.
                self.send_part().await?;
            }
            if self.filling.is_none() {
                let reservation = self.reserve_part().await?;
                self.filling = Some((PooledBuf::with_capacity(part_size), reservation));
            }
            let Some((buffer, _)) = self.filling.as_mut() else {
                return Err(Error::Internal("no part buffer".into()));
            };
            let n = (part_size - buffer.len()).min(data.len());
            buffer.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.written += n as u64;
        }
        self.collect_finished()
    }

    async fn finish(&mut self) -> Result<Stored> {
        let Some(upload) = self.multipart.clone() else {
            // Everything fits in one part: a single PutObject.
            let body = match self.filling.take() {
                Some((buffer, _reservation)) => buffer.freeze(),
                None => bytes::Bytes::new(),
            };
            return self.client.put_object(&self.target, body).await;
        };
        if self.filling.as_ref().is_some_and(|(b, _)| b.len() > 0) {
            self.send_part().await?;
        }
        while self.join_one().await? {}
        self.stored.sort_by_key(|p| p.number);
        let parts = std::mem::take(&mut self.stored);
        let stored = self
            .client
            .complete_upload(&self.target, &upload, &parts)
            .await?;
        // Completed: nothing is left to abort.
        self.multipart = None;
        Ok(stored)
    }

    /// Budget for one more part buffer, waiting for parts in flight to be stored.
    async fn reserve_part(&mut self) -> Result<Reservation> {
        let part = self.settings.part_size as u64;
        loop {
            if let Some(reservation) = self.budget.try_reserve(part) {
                return Ok(reservation);
            }
            if !self.join_one().await? {
                // Nothing in flight holds any: a part always fits in the budget.
                return Ok(self.budget.force_reserve(part));
            }
        }
    }

    /// Starts uploading the part being filled (starting the multipart upload first).
    async fn send_part(&mut self) -> Result<()> {
        let upload = match &self.multipart {
            Some(upload) => upload.clone(),
            None => {
                let upload = self.client.initiate_upload(&self.target).await?;
                self.multipart = Some(upload.clone());
                upload
            }
        };
        while self.running.len() >= self.settings.concurrency {
            self.join_one().await?;
        }
        let Some((buffer, reservation)) = self.filling.take() else {
            return Err(Error::Internal("no part to send".into()));
        };
        let number = self.next_number;
        self.next_number += 1;
        let client = self.client.clone();
        let target = self.target.clone();
        let body = buffer.freeze();
        self.running.spawn_on(
            async move {
                // Held until the part is stored: its bytes stay in memory for the retries.
                let _reservation = reservation;
                client.upload_part(&target, &upload, number, body).await
            },
            &self.runtime,
        );
        Ok(())
    }

    /// Waits for one part in flight; false when none is.
    async fn join_one(&mut self) -> Result<bool> {
        match self.running.join_next().await {
            None => Ok(false),
            Some(joined) => {
                let part = joined
                    .map_err(|e| Error::Internal(format!("part upload task failed: {e}")))??;
                self.stored.push(part);
                Ok(true)
            }
        }
    }

    /// Takes the parts that have finished without waiting, so a failure surfaces at the next
    /// `write` rather than at `close`.
    fn collect_finished(&mut self) -> Result<()> {
        while let Some(joined) = self.running.try_join_next() {
            let part =
                joined.map_err(|e| Error::Internal(format!("part upload task failed: {e}")))??;
            self.stored.push(part);
        }
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.state != State::Open {
            return;
        }
        // Dropped unclosed (the caller went away): the old object must stay, and no pending
        // upload may be left behind.
        self.running.abort_all();
        if let Some(MultipartUpload { id, .. }) = self.multipart.take() {
            let client = self.client.clone();
            let target = self.target.clone();
            self.runtime.spawn(async move {
                if let Err(e) = client.abort_upload(&target, &id).await {
                    log::warn!(target: "osstorchconnector", "could not abort the upload of {target}: {e}");
                }
            });
        }
    }
}
