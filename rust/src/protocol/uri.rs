//! `oss://bucket/key` URIs.

use crate::error::{Error, Result};

/// The scheme every object URI must carry.
pub(crate) const SCHEME: &str = "oss://";

/// A parsed `oss://bucket/key` URI. `key` may be empty (a whole bucket, or an empty prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OssUri {
    /// Bucket name.
    pub bucket: String,
    /// Object key or key prefix, exactly as it is stored (no leading `/`).
    pub key: String,
}

impl OssUri {
    /// Parses `oss://bucket[/key]`.
    ///
    /// # Errors
    /// `InvalidInput` naming the URI when the scheme is not `oss://`, the bucket is empty or not
    /// a valid bucket name, or the key starts with `/`.
    pub(crate) fn parse(uri: &str) -> Result<Self> {
        let rest = uri.strip_prefix(SCHEME).ok_or_else(|| {
            Error::invalid(
                "OSS URI",
                uri,
                "it must start with oss:// (for example oss://bucket/path/to/object)",
            )
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::invalid(
                "OSS URI",
                uri,
                "the bucket name is empty (expected oss://bucket/key)",
            ));
        }
        if let Err(reason) = check_bucket_name(bucket) {
            return Err(Error::invalid("OSS URI", uri, reason));
        }
        if key.starts_with('/') {
            return Err(Error::invalid(
                "OSS URI",
                uri,
                "the object key starts with '/' (write oss://bucket/key, with a single slash)",
            ));
        }
        Ok(OssUri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl std::fmt::Display for OssUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.bucket, self.key)
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
        let u = OssUri::parse("oss://ai-testset/EnglistImg/Img/a b+c.png").unwrap();
        assert_eq!(u.bucket, "ai-testset");
        assert_eq!(u.key, "EnglistImg/Img/a b+c.png");
        assert_eq!(u.to_string(), "oss://ai-testset/EnglistImg/Img/a b+c.png");
    }

    #[test]
    fn bucket_only_and_trailing_slash_mean_empty_key() {
        assert_eq!(OssUri::parse("oss://bkt").unwrap().key, "");
        assert_eq!(OssUri::parse("oss://bkt/").unwrap().key, "");
        assert_eq!(OssUri::parse("oss://bkt/dir/").unwrap().key, "dir/");
    }

    #[test]
    fn rejects_bad_uris_with_the_uri_in_the_message() {
        for (uri, needle) in [
            ("s3://bkt/key", "oss://"),
            ("bkt/key", "oss://"),
            ("oss:///key", "bucket name is empty"),
            ("oss://", "bucket name is empty"),
            ("oss://Bad_Bucket/key", "only lowercase"),
            ("oss://ab/key", "3 to 63"),
            ("oss://-bkt/key", "start and end"),
            ("oss://bkt//key", "starts with '/'"),
        ] {
            let err = OssUri::parse(uri).unwrap_err().to_string();
            assert!(err.contains(needle), "{uri}: {err}");
            assert!(err.contains(&format!("{uri:?}")), "{uri}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in ".*") {
            if let Ok(u) = OssUri::parse(&s) {
                let again = OssUri::parse(&u.to_string()).unwrap();
                proptest::prop_assert_eq!(again, u);
            }
        }

        #[test]
        fn any_key_survives(key in "[^/].*") {
            let u = OssUri::parse(&format!("oss://bucket/{key}")).unwrap();
            proptest::prop_assert_eq!(u.key, key);
        }
    }
}
