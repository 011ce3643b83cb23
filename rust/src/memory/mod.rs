//! Where downloaded bytes live and what bounds them: the per-process byte budget, recycled
//! part buffers, bodies as received, memory lent by Python, the caller's memory written in
//! place, and the page-level advice that makes fresh memory cheap.

pub(crate) mod budget;
pub(crate) mod buffer_pool;
pub(crate) mod chunks;
pub(crate) mod destination;
pub(crate) mod lent;
pub(crate) mod pages;

/// Bodies at least this long are large: they are gathered into recycled buffers
/// ([`buffer_pool`]) rather than kept in the pieces the socket delivered, and whole ones are
/// written into memory Python lends ([`lent`], `pipeline::lend`). Below it, keeping the
/// socket's pieces costs less than any copy (lending 100 KiB objects too measured −10 % MB/s,
/// +20 % CPU/GB in one process).
pub(crate) const LARGE_BODY: usize = 1 << 20;
