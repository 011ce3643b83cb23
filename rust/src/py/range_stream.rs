//! `RangeStream`: byte ranges of one object as `Body`s, in order (see `pipeline::ranges`).

use pyo3::prelude::*;
use std::sync::Arc;
use tokio::runtime::Runtime;

use super::body::PyBody;
use super::wait::wait;
use crate::per_process::ProcessBound;
use crate::pipeline::ranges::RangeStream;

/// Ranges of one object fetched ahead; iterating yields each range's bytes in order.
#[pyclass(name = "RangeStream", module = "osstorchconnector._core")]
pub(crate) struct PyRangeStream {
    stream: ProcessBound<RangeStream>,
    runtime: ProcessBound<Arc<Runtime>>,
}

impl PyRangeStream {
    pub(crate) fn new(mut stream: RangeStream, runtime: Arc<Runtime>) -> Self {
        stream.start_more(); // the first fetches run while Python does other work
        PyRangeStream {
            stream: ProcessBound::new(stream),
            runtime: ProcessBound::new(runtime),
        }
    }
}

#[pymethods]
impl PyRangeStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyBody>> {
        let runtime = self.runtime.clone();
        match wait(py, &runtime, self.stream.next())? {
            None => Ok(None),
            Some(body) => Ok(Some(PyBody::new(body?))),
        }
    }

    /// Stops every fetch still running.
    fn close(&mut self) {
        self.stream.close();
    }
}
