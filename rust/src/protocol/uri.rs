//! Object URIs: `oss://bucket/key` (OSS) and `s3://bucket/key` (S3-compatible stores). The
//! scheme chooses the protocol.

use super::dialect::{Dialect, OSS, S3};
use crate::error::{Error, Result};

/// A parsed `oss://bucket/key` or `s3://bucket/key`. `key` may be empty (a whole bucket, or an
/// empty prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectUri {
    /// The protocol the scheme names.
    pub dialect: &'static Dialect,
    /// Bucket name.
    pub bucket: String,
    /// Object key or key prefix, exactly as it is stored (no leading `/`).
    pub key: String,
}

impl ObjectUri {
    /// Parses `oss://bucket[/key]` or `s3://bucket[/key]`.
    ///
    /// # Errors
    /// `InvalidInput` naming the URI when the scheme is neither, the bucket is empty or not a
    /// valid bucket name, or the key starts with `/`.
    pub(crate) fn parse(uri: &str) -> Result<Self> {
        let (dialect, rest) = [&OSS, &S3]
            .into_iter()
            .find_map(|d| uri.strip_prefix(d.scheme).map(|rest| (d, rest)))
            .ok_or_else(|| {
                Error::invalid(
                    "object URI",
                    uri,
                    "it must start with oss:// or s3:// (for example oss://bucket/path/to/object)",
                )
            })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::invalid(
                "object URI",
                uri,
                format!(
                    "the bucket name is empty (expected {}bucket/key)",
                    dialect.scheme
                ),
            ));
        }
        if let Err(reason) = check_bucket_name(bucket) {
            return Err(Error::invalid("object URI", uri, reason));
        }
        if key.starts_with('/') {
            return Err(Error::invalid(
                "object URI",
                uri,
                format!(
                    "the object key starts with '/' (write {}bucket/key, with a single slash)",
                    dialect.scheme
                ),
            ));
        }
        Ok(ObjectUri {
            dialect,
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// Parses a URI that must be of `dialect`'s protocol (the one a client speaks).
    ///
    /// # Errors
    /// As [`ObjectUri::parse`], and `InvalidInput` when the scheme names the other protocol.
    pub(crate) fn parse_for(uri: &str, dialect: &'static Dialect) -> Result<Self> {
        let parsed = Self::parse(uri)?;
        if parsed.dialect != dialect {
            return Err(Error::invalid(
                "object URI",
                uri,
                format!(
                    "this client was made for {} URIs; make another one for {}",
                    dialect.scheme, parsed.dialect.scheme
                ),
            ));
        }
        Ok(parsed)
    }
}

impl std::fmt::Display for ObjectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}/{}", self.dialect.scheme, self.bucket, self.key)
    }
}

/// Checks the bucket naming rules shared by OSS and S3-compatible stores: 3–63 characters of
/// lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit.
pub(crate) fn check_bucket_name(bucket: &str) -> std::result::Result<(), String> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "bucket name {bucket:?} must be 3 to 63 characters long"
        ));
    }
    if let Some(bad) = bucket
        .chars()
        .find(|&c| !(alnum(c) || c == '-' || c == '.'))
    {
        return Err(format!(
            "bucket name {bucket:?} contains {bad:?}; only lowercase letters, digits, '-' and '.' are allowed"
        ));
    }
    let starts_ok = bucket.chars().next().is_some_and(alnum);
    let ends_ok = bucket.chars().last().is_some_and(alnum);
    if !(starts_ok && ends_ok) {
        return Err(format!(
            "bucket name {bucket:?} must start and end with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        let u = ObjectUri::parse("oss://ai-testset/EnglistImg/Img/a b+c.png").unwrap();
        assert_eq!(u.bucket, "ai-testset");
        assert_eq!(u.key, "EnglistImg/Img/a b+c.png");
        assert_eq!(u.to_string(), "oss://ai-testset/EnglistImg/Img/a b+c.png");
        assert_eq!(u.dialect, &OSS);
        let s3 = ObjectUri::parse("s3://my-bucket/a/b").unwrap();
        assert_eq!(
            (s3.dialect, s3.bucket.as_str(), s3.key.as_str()),
            (&S3, "my-bucket", "a/b")
        );
        assert_eq!(s3.to_string(), "s3://my-bucket/a/b");
    }

    #[test]
    fn a_client_takes_only_its_own_scheme() {
        assert!(ObjectUri::parse_for("oss://bkt/k", &OSS).is_ok());
        let err = ObjectUri::parse_for("s3://bkt/k", &OSS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("made for oss://"), "{err}");
    }

    #[test]
    fn bucket_only_and_trailing_slash_mean_empty_key() {
        assert_eq!(ObjectUri::parse("oss://bkt").unwrap().key, "");
        assert_eq!(ObjectUri::parse("oss://bkt/").unwrap().key, "");
        assert_eq!(ObjectUri::parse("oss://bkt/dir/").unwrap().key, "dir/");
    }

    #[test]
    fn rejects_bad_uris_with_the_uri_in_the_message() {
        for (uri, needle) in [
            ("gs://bkt/key", "oss:// or s3://"),
            ("bkt/key", "oss:// or s3://"),
            ("s3:///key", "bucket name is empty"),
            ("oss:///key", "bucket name is empty"),
            ("oss://", "bucket name is empty"),
            ("oss://Bad_Bucket/key", "only lowercase"),
            ("oss://ab/key", "3 to 63"),
            ("oss://-bkt/key", "start and end"),
            ("oss://bkt//key", "starts with '/'"),
        ] {
            let err = ObjectUri::parse(uri).unwrap_err().to_string();
            assert!(err.contains(needle), "{uri}: {err}");
            assert!(err.contains(&format!("{uri:?}")), "{uri}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in ".*") {
            if let Ok(u) = ObjectUri::parse(&s) {
                let again = ObjectUri::parse(&u.to_string()).unwrap();
                proptest::prop_assert_eq!(again, u);
            }
        }

        #[test]
        fn any_key_survives(key in "[^/].*") {
            let u = ObjectUri::parse(&format!("oss://bucket/{key}")).unwrap();
            proptest::prop_assert_eq!(u.key, key);
        }
    }
}
