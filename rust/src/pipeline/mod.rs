//! Objects in, bytes out: the ordered, bounded pipeline of GETs behind a dataset's iterator,
//! and parallel ranged reads of objects the pipeline has moved past.
//!
//! Data flows one way: [`input`] (pushed objects or a listing task) → [`schedule`] (jobs
//! within width, lookahead and byte budget; results in ordered slots) → [`stream`] (the
//! consumer takes objects and parts in order). [`lend`] and `read_rest` let the consumer's
//! memory receive bytes directly; [`span_read`] serves objects the stream has moved past.
//! [`ranges`] is the same idea for byte ranges of one object (runs of tar members).

mod input;
mod lend;
pub(crate) mod ranges;
mod read_rest;
mod schedule;
pub(crate) mod span_read;
mod stream;

pub use input::ObjectRequest;
#[cfg(feature = "python")]
pub(crate) use input::Shard;
pub use schedule::StreamSettings;
pub use stream::{ObjectStart, ObjectStream, Part};
