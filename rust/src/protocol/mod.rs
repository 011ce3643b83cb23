//! What requests and answers look like on the wire: `oss://` URIs, endpoints and addressing,
//! the XML documents.

pub(crate) mod endpoint;
pub(crate) mod uri;
pub(crate) mod xml;
