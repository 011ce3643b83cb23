//! The one request path every operation goes through: sign, send, decode errors, retry with
//! backoff, narrow the width while the store throttles, record each attempt in the audit log.

pub(crate) mod answer;
pub(crate) mod audit;
pub(crate) mod client;
pub(crate) mod plain;
pub(crate) mod request;
pub(crate) mod retry;
pub(crate) mod throttle;

#[cfg(test)]
mod tests;
