//! Where downloaded bytes live and what bounds them: the per-process byte budget, recycled
//! part buffers, bodies as received, memory lent by Python, the caller's memory written in
//! place, and the page-level advice that makes fresh memory cheap.

pub(crate) mod budget;
pub(crate) mod buffer_pool;
pub(crate) mod chunks;
pub(crate) mod destination;
pub(crate) mod lent;
pub(crate) mod pages;
