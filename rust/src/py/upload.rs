//! `Upload`: an object being written, for Python's writer classes.

use std::sync::Arc;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

use super::wait::wait;
use crate::per_process::ProcessBound;
use crate::upload::Upload;

/// Bytes written in order become the object when `close()` completes; `abort()` (or any
/// failure) leaves the old object as it was.
#[pyclass(frozen, name = "Upload", module = "osstorchconnector._core")]
pub(crate) struct PyUpload {
    upload: ProcessBound<Arc<Mutex<Upload>>>,
    runtime: ProcessBound<Arc<Runtime>>,
    uri: String,
}

impl PyUpload {
    pub(crate) fn new(upload: Upload, runtime: Arc<Runtime>) -> Self {
        PyUpload {
            uri: upload.target().to_string(),
            upload: ProcessBound::new(Arc::new(Mutex::new(upload))),
            runtime: ProcessBound::new(runtime),
        }
    }
}

#[pymethods]
impl PyUpload {
    /// Appends the bytes of `buffer` (any contiguous buffer); returns how many. Waits, without
    /// the GIL, while the upload's memory budget is spent.
    fn write(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let source = PyBuffer::<u8>::get(buffer)?;
        if !source.is_c_contiguous() {
            return Err(PyBufferError::new_err("write needs a contiguous buffer"));
        }
        let len = source.len_bytes();
        if len == 0 {
            return Ok(0);
        }
        // SAFETY: `source` keeps the buffer exported, so alive and in place, until it is
        // dropped at the end of this function, after the wait below has ended; as with
        // `socket.send`, another thread writing into it meanwhile is the caller's race.
        let data = unsafe { std::slice::from_raw_parts(source.buf_ptr().cast::<u8>(), len) };
        let upload = self.upload.clone();
        wait(py, &self.runtime, async move {
            upload.lock().await.write(data).await
        })??;
        Ok(len)
    }

    /// Completes the upload: the object is replaced now. Returns `(etag, size, crc)` (the
    /// protocol's own CRC-64).
    fn close(&self, py: Python<'_>) -> PyResult<(String, u64, u64)> {
        let upload = self.upload.clone();
        let stored = wait(py, &self.runtime, async move {
            upload.lock().await.close().await
        })??;
        Ok((stored.etag, stored.len, stored.crc))
    }

    /// Abandons the upload; the object keeps its old content. Nothing happens once closed.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let upload = self.upload.clone();
        wait(py, &self.runtime, async move {
            upload.lock().await.abort().await
        })??;
        Ok(())
    }

    /// Bytes written so far.
    #[getter]
    fn written(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.upload.blocking_lock().written())
    }

    fn __repr__(&self) -> String {
        format!("Upload({:?})", self.uri)
    }
}
