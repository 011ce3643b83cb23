//! Waiting on the runtime without holding the GIL, while still honouring Ctrl-C.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// How often a blocked wait wakes to let Python deliver signals (KeyboardInterrupt).
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `future` to completion on `runtime` with the GIL released. Between slices the GIL is
/// taken back briefly to run signal handlers, so Ctrl-C interrupts a long wait promptly;
/// when it does, the future is dropped, which cancels its work.
pub(crate) fn wait<F>(py: Python<'_>, runtime: &Runtime, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut future = std::pin::pin!(future);
    loop {
        let slice = py.detach(|| {
            // The timer must be created inside the runtime, hence the async block.
            runtime.block_on(async {
                tokio::time::timeout(SIGNAL_CHECK_INTERVAL, future.as_mut()).await
            })
        });
        match slice {
            Ok(output) => return Ok(output),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}
