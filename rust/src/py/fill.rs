//! Filling a caller's buffer (a `bytes` being built, a `readinto` target) by downloads that
//! write into it directly.

use std::future::Future;
use std::sync::Arc;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use super::wait::wait;
use crate::memory::destination::{Destination, Writers};

/// Runs `fill` over the memory of the writable, contiguous byte buffer `buffer` and returns
/// its result. `what` names the operation in the error for an unusable buffer.
///
/// Success, error or Ctrl-C: this returns only once no download writes into the buffer any
/// more, so Python may free or reuse it right away.
pub(crate) fn fill_buffer<T, F, Fut>(
    py: Python<'_>,
    runtime: &Runtime,
    buffer: &Bound<'_, PyAny>,
    what: &str,
    fill: F,
) -> PyResult<T>
where
    F: FnOnce(Destination, Arc<Writers>) -> Fut,
    Fut: Future<Output = crate::error::Result<T>> + Send,
    T: Send,
{
    let target = PyBuffer::<u8>::get(buffer)?;
    if target.readonly() || !target.is_c_contiguous() {
        return Err(PyBufferError::new_err(format!(
            "{what} needs a writable, contiguous buffer"
        )));
    }
    // SAFETY: `target` keeps the buffer exported until this function returns, so it can be
    // neither freed nor resized (as for socket.recv_into, other threads writing into it at the
    // same time is the caller's race); every download given a piece of it has stopped before we
    // return (`stopped` below).
    let dst = unsafe { Destination::new(target.buf_ptr().cast::<u8>(), target.len_bytes()) };
    let writers = Arc::new(Writers::default());
    let result = wait(py, runtime, fill(dst, writers.clone()));
    py.detach(|| runtime.block_on(writers.stopped()));
    Ok(result??)
}
