//! Objects in, bytes out: the ordered, bounded pipeline of GETs behind a dataset's iterator,
//! and parallel ranged reads of objects the pipeline has moved past.

pub(crate) mod span_read;
mod stream;

pub(crate) use stream::Shard;
pub use stream::{ObjectRequest, ObjectStart, ObjectStream, Part, StreamSettings};
