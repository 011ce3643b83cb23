//! The store's operations, each one request (and its retries) on the [`crate::http`] path;
//! [`local`] serves reads from files instead when the endpoint is empty.

pub(crate) mod answer;
pub(crate) mod crc;
pub(crate) mod get;
pub(crate) mod list;
pub(crate) mod local;
pub(crate) mod multipart;
pub(crate) mod object;
pub(crate) mod put;
pub(crate) mod range;
