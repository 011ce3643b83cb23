//! What OSS V4 and AWS SigV4 do the same way: HMAC-SHA256 chains, the SHA-256 of the canonical
//! request, and a cache of the derived signing key. Canonicalisation is not here: the two specs
//! differ in which headers they sign, how they trim values and how they write empty query values.
//! (Both percent-encode with `protocol::endpoint`'s sets.)

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::header::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::protocol::endpoint::QUERY_ENCODE_SET;

/// An HMAC-SHA256 output: a signing key or a signature.
pub(super) type Key = [u8; 32];

/// `now` as both signatures write it, `20250102T030405Z` (ISO 8601 basic). By hand: chrono's
/// `format` parses its pattern again on every call, and this runs once per request.
pub(super) fn timestamp(now: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let (date, time) = (now.date_naive(), now.time());
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        date.year(),
        date.month(),
        date.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

pub(super) fn hmac(key: &[u8], data: &[u8]) -> Key {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex of SHA-256(`data`).
pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Sets header `name` to `value`, marked sensitive when it carries a secret (a token).
///
/// # Errors
/// `InvalidInput` when `value` cannot be an HTTP header value.
pub(super) fn set_header(
    headers: &mut http::HeaderMap,
    name: &'static str,
    value: &str,
    sensitive: bool,
) -> Result<()> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        Error::invalid(
            "header value",
            name,
            "it contains characters not allowed in an HTTP header",
        )
    })?;
    v.set_sensitive(sensitive);
    headers.insert(HeaderName::from_static(name), v);
    Ok(())
}

/// The last signing key derived. A signer's region and service are fixed, so the key changes
/// only with the date and the secret, and deriving it takes four of a signature's five HMACs.
#[derive(Default)]
pub(super) struct KeyCache(Mutex<Option<CachedKey>>);

struct CachedKey {
    secret: String,
    date: String,
    key: Key,
}

impl KeyCache {
    /// The key for (`secret`, `date`): the cached one, or `derive()`'s, which is then cached.
    pub(super) fn get(&self, secret: &str, date: &str, derive: impl FnOnce() -> Key) -> Key {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot
            .as_ref()
            .filter(|c| c.date == date && c.secret == secret)
        {
            return c.key;
        }
        let key = derive();
        *slot = Some(CachedKey {
            secret: secret.to_string(),
            date: date.to_string(),
            key,
        });
        key
    }
}

impl Clone for KeyCache {
    fn clone(&self) -> Self {
        KeyCache::default()
    }
}

impl fmt::Debug for KeyCache {
    // Never the secret or the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyCache")
    }
}

/// Query parameters with names and values strictly encoded (RFC 3986), sorted by name, then
/// value: both signatures order them so (sorting joined `k=v` strings would put `a-b=` before
/// `a=1`); they differ only in how an empty value is written.
pub(crate) fn encoded_sorted_query(query: &[(String, String)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| {
            (
                percent_encoding::utf8_percent_encode(k, QUERY_ENCODE_SET).to_string(),
                percent_encoding::utf8_percent_encode(v, QUERY_ENCODE_SET).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_and_sha256_match_rfc_4231_and_fips_180_vectors() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn key_cache_derives_again_only_when_secret_or_date_change() {
        let cache = KeyCache::default();
        let mut derived = 0;
        let mut get = |secret: &str, date: &str| {
            cache.get(secret, date, || {
                derived += 1;
                hmac(secret.as_bytes(), date.as_bytes())
            })
        };
        let a = get("s1", "20240101");
        assert_eq!(get("s1", "20240101"), a);
        assert_ne!(get("s2", "20240101"), a);
        assert_ne!(get("s2", "20240102"), a);
        assert_eq!(get("s1", "20240101"), a);
        assert_eq!(derived, 4);
        assert_eq!(format!("{:?}", KeyCache::default()), "KeyCache");
    }
}
