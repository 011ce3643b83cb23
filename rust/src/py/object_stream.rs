//! `ObjectStream`: the pipeline as a Python iterator of `(bucket, key, size, label, body)`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator};
use tokio::runtime::Runtime;

use super::wait::wait;
use crate::stream::{ObjectRequest, ObjectStream};
use crate::uri::OssUri;

type Item<'py> = (String, String, u64, String, Bound<'py, PyBytes>);

/// Iterator over fetched objects, in input order.
#[pyclass(name = "ObjectStream", module = "osstorchconnector._core")]
pub(crate) struct PyObjectStream {
    stream: ObjectStream,
    runtime: Arc<Runtime>,
    /// Python iterator of `(uri, label)` still to be queued; `None` once exhausted.
    source: Option<Py<PyIterator>>,
}

impl PyObjectStream {
    pub(crate) fn new(
        stream: ObjectStream,
        runtime: Arc<Runtime>,
        source: Option<Py<PyIterator>>,
    ) -> Self {
        PyObjectStream {
            stream,
            runtime,
            source,
        }
    }

    /// Pulls from the Python source until the pipeline has enough queued work.
    fn refill(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(source) = self.source.as_ref() else {
            return Ok(());
        };
        let mut source = source.bind(py).clone();
        for _ in 0..self.stream.wants() {
            let Some(item) = source.next() else {
                self.source = None;
                return Ok(());
            };
            let (uri, label): (String, String) = item?.extract()?;
            match OssUri::parse(&uri) {
                Ok(u) => self.stream.push(ObjectRequest {
                    bucket: u.bucket,
                    key: u.key,
                    label,
                }),
                Err(e) => self.stream.push_error(e),
            }
        }
        Ok(())
    }
}

#[pymethods]
impl PyObjectStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Item<'py>>> {
        self.refill(py)?;
        let runtime = self.runtime.clone();
        let Some(result) = wait(py, &runtime, self.stream.next())? else {
            return Ok(None);
        };
        let object = result?;
        let size = object.body.len() as u64;
        Ok(Some((
            object.bucket,
            object.key,
            size,
            object.label,
            PyBytes::new(py, &object.body),
        )))
    }
}
