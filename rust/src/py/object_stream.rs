//! `ObjectStream`: the pipeline as a Python iterator, and `PartReader` for the rest of a large
//! object.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyIterator;
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

use pyo3::types::PyBytes;

use super::body::{uninit_bytes, PyBody};
use super::fill::fill_buffer;
use super::wait::wait;
use crate::memory::chunks::Chunks;
use crate::memory::lent::{Lent, Owner};
use crate::per_process::ProcessBound;
use crate::pipeline::{ObjectRequest, ObjectStream};
use crate::protocol::uri::ObjectUri;
use crate::protocol::Dialect;

/// One object as the stream hands it to Python.
#[pyclass(
    frozen,
    get_all,
    name = "StreamedObject",
    module = "osstorchconnector._core"
)]
pub(crate) struct StreamedObject {
    /// Bucket.
    bucket: String,
    /// Key inside the bucket.
    key: String,
    /// Size of the whole object.
    size: u64,
    /// ETag of the version every byte comes from; later reads by range are pinned to it.
    etag: String,
    /// The request's label (from a manifest), `""` when none.
    label: String,
    /// The first bytes: the object's whole `bytes` when the pipeline wrote it into one lent
    /// to it, else a `Body` (shorter than `size` when more parts follow).
    first: Py<PyAny>,
    /// The rest, while the stream is still on this object; `None` when `first` is all of it.
    rest: Option<Py<PartReader>>,
}

#[pymethods]
impl StreamedObject {
    fn __repr__(&self) -> String {
        format!(
            "StreamedObject(bucket={:?}, key={:?}, size={})",
            self.bucket, self.key, self.size
        )
    }
}

/// A `bytes` lent to the pipeline for an object's body (see [`crate::memory::lent`]).
struct LentBytes(Py<PyBytes>);

/// Lends the stream new, unfilled `bytes` for the whole bodies it is about to fetch.
fn lend_bytes(py: Python<'_>, stream: &mut ObjectStream) {
    stream.lend(|len| {
        // SAFETY: the object stays private to the pipeline until its download has written all
        // `len` bytes (`Chunks::lent` is only set then); otherwise it is dropped unseen.
        let (bytes, data) = unsafe { uninit_bytes(py, len) }.ok()?;
        let owner: Owner = Arc::new(LentBytes(bytes.unbind()));
        // SAFETY: `owner` keeps the bytes object, and so its memory, alive; nothing else holds
        // a reference to it.
        Some(unsafe { Lent::new(data, len, owner) })
    });
}

/// The `bytes` lent to a whole object, when `owner` is one.
fn lent_bytes(py: Python<'_>, owner: &Owner) -> Option<Py<PyAny>> {
    let lent = owner.clone().downcast::<LentBytes>().ok()?;
    Some(lent.0.clone_ref(py).into_any())
}

/// The first part as Python gets it: the filled `bytes` itself when it is the whole object's
/// lent memory, else a `Body` (over its piece of that memory, when the object was lent whole).
fn first_part(py: Python<'_>, body: Chunks, size: u64) -> PyResult<Py<PyAny>> {
    if body.len() as u64 == size {
        if let Some(bytes) = body.lent().and_then(|owner| lent_bytes(py, owner)) {
            return Ok(bytes);
        }
    }
    Ok(Py::new(py, PyBody::new(body))?.into_any())
}

/// Iterator over [`StreamedObject`]s in input order.
#[pyclass(name = "ObjectStream", module = "osstorchconnector._core")]
pub(crate) struct PyObjectStream {
    stream: ProcessBound<Arc<Mutex<ObjectStream>>>,
    runtime: ProcessBound<Arc<Runtime>>,
    /// Python iterator of `(uri, label)` still to be queued; `None` once exhausted.
    source: Option<Py<PyIterator>>,
    /// The protocol whose URIs the source may name.
    dialect: &'static Dialect,
    /// Whether the first object was asked for.
    started: bool,
}

impl PyObjectStream {
    pub(crate) fn new(
        stream: ObjectStream,
        runtime: Arc<Runtime>,
        source: Option<Py<PyIterator>>,
        dialect: &'static Dialect,
    ) -> Self {
        PyObjectStream {
            stream: ProcessBound::new(Arc::new(Mutex::new(stream))),
            runtime: ProcessBound::new(runtime),
            source,
            dialect,
            started: false,
        }
    }

    /// Pulls from the Python source until the pipeline has enough queued work.
    fn refill(&mut self, py: Python<'_>, stream: &mut ObjectStream) -> PyResult<()> {
        let Some(source) = self.source.as_ref() else {
            return Ok(());
        };
        let mut source = source.bind(py).clone();
        for _ in 0..stream.wants() {
            let Some(item) = source.next() else {
                self.source = None;
                return Ok(());
            };
            let (uri, label, size) = source_item(&item?)?;
            match ObjectUri::parse_for(&uri, self.dialect) {
                Ok(u) => stream.push(ObjectRequest {
                    bucket: u.bucket,
                    key: u.key,
                    label,
                    size,
                    ..ObjectRequest::default()
                }),
                Err(e) => stream.push_error(e),
            }
        }
        Ok(())
    }
}

/// `(uri, label)`, or `(uri, label, size)` when the caller knows the size (a negative size
/// is unknown): a known size saves the pipeline a probe and lets it lend whole bodies.
fn source_item(item: &Bound<'_, PyAny>) -> PyResult<(String, String, Option<u64>)> {
    if let Ok((uri, label)) = item.extract::<(String, String)>() {
        return Ok((uri, label, None));
    }
    let (uri, label, size): (String, String, i64) = item.extract()?;
    Ok((uri, label, u64::try_from(size).ok()))
}

#[pymethods]
impl PyObjectStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Later objects wait while the consumer is on a large object lent whole (for a stream in
    /// one of several DataLoader workers; see `ObjectStream::one_large_at_a_time`).
    fn one_large_at_a_time(&self, py: Python<'_>) {
        let shared = self.stream.clone();
        py.detach(|| shared.blocking_lock().one_large_at_a_time());
    }

    /// Cancels all prefetching except the rest of the current object (the loop is over).
    fn close(&mut self, py: Python<'_>) {
        self.source = None;
        let shared = self.stream.clone();
        py.detach(|| shared.blocking_lock().close());
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<StreamedObject>> {
        let shared = self.stream.clone();
        let runtime = self.runtime.clone();
        if !self.started {
            self.started = true;
            wait(py, &runtime, async {
                shared.lock().await.wait_for_input().await
            })?;
        }
        {
            // Uncontended unless a PartReader of this stream is reading on another thread.
            let mut stream = py.detach(|| shared.blocking_lock());
            // Under the GIL, so that the previous object's `bytes` is freed now, not during the wait.
            stream.leave_current();
            self.refill(py, &mut stream)?;
            lend_bytes(py, &mut stream);
        }
        let next = wait(py, &runtime, async {
            shared.lock().await.next_object().await
        })?;
        let Some(result) = next else {
            return Ok(None);
        };
        let start = result?;
        let more = (start.first.body.len() as u64) < start.size;
        let first = first_part(py, start.first.body, start.size)?;
        let rest = more
            .then(|| {
                let reader = PartReader {
                    stream: ProcessBound::new(shared.clone()),
                    runtime: ProcessBound::new(runtime.clone()),
                    seq: start.seq,
                };
                Py::new(py, reader)
            })
            .transpose()?;
        Ok(Some(StreamedObject {
            bucket: start.bucket,
            key: start.key,
            size: start.size,
            etag: start.etag,
            label: start.label,
            first,
            rest,
        }))
    }
}

/// The remaining parts of one large object, while its stream has not moved past it.
#[pyclass(frozen, module = "osstorchconnector._core")]
pub(crate) struct PartReader {
    stream: ProcessBound<Arc<Mutex<ObjectStream>>>,
    runtime: ProcessBound<Arc<Runtime>>,
    seq: u64,
}

#[pymethods]
impl PartReader {
    /// The next part as `(offset, bytes)`, or `None` when there is no more or the stream has
    /// moved on to a later object (read the rest by range instead).
    fn next_part(&self, py: Python<'_>) -> PyResult<Option<(u64, PyBody)>> {
        let seq = self.seq;
        let part = wait(py, &self.runtime, async {
            self.stream.lock().await.next_part(seq).await
        })?;
        match part {
            None => Ok(None),
            Some(part) => {
                let part = part?;
                Ok(Some((part.offset, PyBody::new(part.body))))
            }
        }
    }

    /// The whole object as one `bytes`, when its parts were written into memory lent to it
    /// (none copied); `None`, with nothing taken, when it was not or the stream has moved on.
    fn read_whole(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let seq = self.seq;
        let owner = wait(py, &self.runtime, async {
            self.stream.lock().await.read_whole(seq).await
        })??;
        Ok(owner.and_then(|owner| lent_bytes(py, &owner)))
    }

    /// Reads everything from `offset` (where the parts not yet taken begin) to the object's
    /// end into the writable, contiguous byte buffer `buffer`, which must be exactly that long;
    /// parts not yet started are downloaded straight into it. Returns the bytes written: 0,
    /// with nothing taken, when the stream has moved on or `offset`/`buffer` do not match.
    fn read_rest_into(
        &self,
        py: Python<'_>,
        offset: u64,
        buffer: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let seq = self.seq;
        fill_buffer(
            py,
            &self.runtime,
            buffer,
            "read_rest_into",
            |dst, writers| async move {
                self.stream
                    .lock()
                    .await
                    .read_rest_into(seq, offset, dst, &writers)
                    .await
            },
        )
    }
}
