//! One tokio runtime per process.
//!
//! DataLoader workers are forked from a parent that may already have a runtime; its threads do
//! not exist in the child, so the runtime is keyed by process id and a child builds its own.

use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The runtime of the current process, created on first use with `worker_threads` threads.
///
/// # Errors
/// `Internal` when the OS refuses to start the runtime's threads.
pub(crate) fn runtime(worker_threads: usize) -> Result<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(rt.clone());
        }
    }
    // A runtime inherited across fork has no threads here; dropping it would try to join
    // them, so it is leaked on purpose (once per forked process).
    if let Some(inherited) = slot.take() {
        std::mem::forget(inherited);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .thread_name("osstorchconnector")
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the I/O runtime: {e}")))?;
    let rt = Arc::new(rt);
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}
