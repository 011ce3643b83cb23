//! `Body` for Python: an object's bytes kept in Rust (see [`crate::memory::chunks`]) and copied exactly
//! once on the way out — into a new `bytes`, or into the caller's buffer for `readinto`.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::memory::chunks::Chunks;
use crate::memory::pages::{prefer_huge_pages, HEAP_UP_TO};

/// Bytes of (part of) an object, as the pipeline received them.
#[pyclass(frozen, name = "Body", module = "osstorchconnector._core")]
pub(crate) struct PyBody(Chunks);

impl PyBody {
    pub(crate) fn new(body: Chunks) -> Self {
        PyBody(body)
    }

    /// How many bytes exist from `start`, at most `size`.
    fn span(&self, start: usize, size: usize) -> usize {
        self.0.len().saturating_sub(start).min(size)
    }
}

#[pymethods]
impl PyBody {
    fn __len__(&self) -> usize {
        self.0.len()
    }

    /// Bytes `start..start+size` (all from `start` when `size` is None; fewer at the end).
    #[pyo3(signature = (start = 0, size = None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        size: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let len = self.span(start, size.unwrap_or(usize::MAX));
        // SAFETY: `copy_to` writes all `len` bytes of the new object: that many exist from
        // `start`.
        unsafe {
            let (bytes, dst) = uninit_bytes(py, len)?;
            self.0
                .copy_to(start, std::slice::from_raw_parts_mut(dst, len));
            Ok(bytes)
        }
    }

    /// Copies bytes from `start` into the writable, contiguous byte buffer `buffer` (as many as
    /// fit and exist); returns how many.
    fn readinto(&self, start: usize, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let target = PyBuffer::<u8>::get(buffer)?;
        if target.readonly() {
            return Err(PyBufferError::new_err("readinto needs a writable buffer"));
        }
        if !target.is_c_contiguous() {
            return Err(PyBufferError::new_err("readinto needs a contiguous buffer"));
        }
        let len = self.span(start, target.item_count());
        // SAFETY: `target` stays exported (so alive and in place) until it is dropped at the end
        // of this function; it is writable, contiguous and at least `len` bytes long.
        let dst = unsafe { std::slice::from_raw_parts_mut(target.buf_ptr().cast::<u8>(), len) };
        Ok(self.0.copy_to(start, dst))
    }

    fn __repr__(&self) -> String {
        format!("Body(len={})", self.0.len())
    }
}

/// A new `bytes` object of `len` bytes, uninitialised, and a pointer to its memory — without the
/// zeroing `PyBytes::new_with` does first, which would touch every page one more time.
///
/// # Safety
/// The caller writes all `len` bytes before anything else can see the object.
pub(crate) unsafe fn uninit_bytes(
    py: Python<'_>,
    len: usize,
) -> PyResult<(Bound<'_, PyBytes>, *mut u8)> {
    let size = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err(format!("{len} bytes do not fit in a bytes object")))?;
    // SAFETY: a null source asks CPython for an uninitialised bytes object of `size` bytes.
    unsafe {
        let raw = ffi::PyBytes_FromStringAndSize(ptr::null(), size);
        let object = Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyBytes>();
        let data = ffi::PyBytes_AsString(raw).cast::<u8>();
        if len > HEAP_UP_TO {
            // Its own fresh mapping (see crate::memory).
            prefer_huge_pages(data, len);
        }
        Ok((object, data))
    }
}

/// A writable buffer over the memory of a `bytes` being filled by [`read_via`]. It counts the
/// views exported from it and refuses new ones once closed, so `read_via` can tell whether any
/// view outlived the fill.
#[pyclass(frozen, module = "osstorchconnector._core")]
pub(crate) struct Window {
    /// Address of the memory (kept as an integer: the class must be `Send`).
    address: usize,
    len: usize,
    exports: AtomicUsize,
    closed: AtomicBool,
}

#[pymethods]
impl Window {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        if this.closed.load(Ordering::Acquire) {
            return Err(PyBufferError::new_err("the window was closed"));
        }
        let len = ffi::Py_ssize_t::try_from(this.len)
            .map_err(|_| PyBufferError::new_err("window too large"))?;
        // SAFETY: `view` comes from CPython's buffer machinery; the memory stays valid while the
        // export is counted (read_via keeps the bytes alive for good if one outlives it).
        let filled = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.address as *mut c_void,
                len,
                0,
                flags,
            )
        };
        if filled != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        this.exports.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads `size` bytes into a new `bytes` by one call of `readinto(window)`, where `window` is a
/// writable buffer over the new object's memory: a read spanning several bodies is copied once,
/// straight into the result. The result is cut to the count `readinto` returns. A view of the
/// window kept past the call is an error (and the memory is then never freed, so that view
/// cannot write into freed memory or into a `bytes` someone holds).
#[pyfunction]
pub(crate) fn read_via<'py>(
    py: Python<'py>,
    size: usize,
    readinto: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    // SAFETY: `readinto` initialises the bytes (up to the count it returns) before the object is
    // returned; a short count returns a copy of only the initialised bytes.
    let (bytes, dst) = unsafe { uninit_bytes(py, size)? };
    let window = Bound::new(
        py,
        Window {
            address: dst as usize,
            len: size,
            exports: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        },
    )?;
    let called = readinto
        .call1((&window,))
        .and_then(|n| n.extract::<usize>());
    let state = window.get();
    state.closed.store(true, Ordering::Release);
    if state.exports.load(Ordering::Acquire) > 0 {
        std::mem::forget(bytes);
        return Err(PyBufferError::new_err(
            "readinto kept a view of the buffer it was given",
        ));
    }
    let n = called?.min(size);
    if n == size {
        return Ok(bytes);
    }
    // SAFETY: the first `n` bytes were written by `readinto`.
    let written = unsafe { std::slice::from_raw_parts(dst, n) };
    Ok(PyBytes::new(py, written))
}
