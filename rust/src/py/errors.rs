//! The one conversion from the core's error to the Python exception classes, which live in
//! `osstorchconnector/exceptions.py` so they can inherit from builtins and pickle.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{Error, ErrorKind};

const EXCEPTIONS_MODULE: &str = "osstorchconnector.exceptions";

fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "OssNotFoundError",
        ErrorKind::PermissionDenied => "OssPermissionError",
        ErrorKind::InvalidInput => "OssConfigError",
        ErrorKind::Timeout => "OssTimeoutError",
        ErrorKind::Changed => "OssObjectChangedError",
        ErrorKind::Other => "OssError",
    }
}

impl From<Error> for PyErr {
    fn from(error: Error) -> PyErr {
        let message = error.to_string();
        Python::attach(|py| match build(py, &error, &message) {
            Ok(instance) => PyErr::from_value(instance),
            // The exceptions module itself failed to import: still say what went wrong.
            Err(import_error) => {
                let e = PyRuntimeError::new_err(message);
                e.set_cause(py, Some(import_error));
                e
            }
        })
    }
}

fn build<'py>(py: Python<'py>, error: &Error, message: &str) -> PyResult<Bound<'py, PyAny>> {
    let class = py
        .import(EXCEPTIONS_MODULE)?
        .getattr(class_name(error.kind()))?;
    let kwargs = PyDict::new(py);
    if let Some(s) = error.service() {
        kwargs.set_item("code", &s.code)?;
        kwargs.set_item("status", s.status)?;
    }
    if let Error::Changed { .. } = error {
        kwargs.set_item("code", "PreconditionFailed")?;
        kwargs.set_item("status", 412)?;
    }
    kwargs.set_item("request_id", error.request_id())?;
    if let Some(target) = error.target() {
        kwargs.set_item("bucket", &target.bucket)?;
        kwargs.set_item("key", &target.key)?;
    }
    class.call((message,), Some(&kwargs))
}
