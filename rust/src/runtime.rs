//! One tokio runtime per process.
//!
//! A forked DataLoader worker builds its own (see [`crate::per_process`]).

use std::sync::Arc;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::per_process::PerProcess;

static RUNTIME: PerProcess<Arc<Runtime>> = PerProcess::new();

/// The runtime of the current process, created on first use with `worker_threads` threads.
///
/// # Errors
/// `Internal` when the OS refuses to start the runtime's threads.
pub(crate) fn runtime(worker_threads: usize) -> Result<Arc<Runtime>> {
    RUNTIME.get_or_try_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("osstorchconnector")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Arc::new(rt))
    })
}
