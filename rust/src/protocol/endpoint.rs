//! Endpoints: scheme, host, port, addressing style, region inference and request URLs.
//!
//! <https://www.alibabacloud.com/help/en/oss/user-guide/regions-and-endpoints>

use std::net::IpAddr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{Error, Result};

/// Bytes left as-is in a URL path: RFC 3986 unreserved characters and `/`.
/// OSS V4 canonicalises the path the same way, so one encoding serves both.
pub(crate) const PATH_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Bytes left as-is in a query name or value: unreserved characters only (`/` → `%2F`).
pub(crate) const QUERY_ENCODE_SET: &AsciiSet = &PATH_ENCODE_SET.add(b'/');

/// How the bucket is placed in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressingStyle {
    /// `https://bucket.host/key` — what OSS expects.
    VirtualHosted,
    /// `https://host/bucket/key` — for IP and localhost endpoints and S3-compatible servers.
    Path,
}

/// A parsed service endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP, without port; IPv6 without brackets.
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
    /// Where the bucket goes in URLs.
    pub style: AddressingStyle,
}

impl Endpoint {
    /// Parses `[scheme://]host[:port][/]`. No scheme means https. The addressing style is path
    /// style for IP addresses and `localhost`, virtual-hosted otherwise, unless `path_style` forces it.
    ///
    /// # Errors
    /// `InvalidInput` naming the endpoint when it is empty, has an unknown scheme, a path, or a bad port.
    pub fn parse(endpoint: &str, path_style: Option<bool>) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("endpoint", endpoint, reason);
        let trimmed = endpoint.trim();
        if trimmed.is_empty() {
            return Err(bad(
                "it is empty (expected e.g. http://oss-cn-beijing-internal.aliyuncs.com)",
            ));
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, rest)) => (s.to_ascii_lowercase(), rest),
            None => ("https".to_string(), trimmed),
        };
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.contains('?') || authority.contains('@') {
            return Err(bad(
                "it must be scheme://host[:port] with no path, query or user",
            ));
        }
        let (host, port) = split_host_port(authority).map_err(|r| bad(&r))?;
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let host = host.to_ascii_lowercase();
        let is_local = host == "localhost" || host.parse::<IpAddr>().is_ok();
        let style = match path_style {
            Some(true) => AddressingStyle::Path,
            Some(false) => AddressingStyle::VirtualHosted,
            None if is_local => AddressingStyle::Path,
            None => AddressingStyle::VirtualHosted,
        };
        Ok(Endpoint {
            scheme,
            host,
            port,
            style,
        })
    }

    /// The region named by an Alibaba Cloud endpoint host, if it names one:
    /// `oss-<region>[-internal].aliyuncs.com` or `<region>[-internal].oss.aliyuncs.com`.
    pub fn infer_region(&self) -> Option<String> {
        infer_region_from_host(&self.host)
    }

    /// The AWS region an S3 endpoint's name says (`s3.<region>.amazonaws.com` and its
    /// variants), else what [`Endpoint::infer_region`] says (OSS's S3-compatible endpoints).
    pub fn infer_s3_region(&self) -> Option<String> {
        let labels: Vec<&str> = self.host.split('.').collect();
        if self.host.ends_with(".amazonaws.com") {
            return infer_aws_region(&labels);
        }
        self.infer_region()
    }

    /// The URL of an object (`key` non-empty) or a bucket (`key` empty), key percent-encoded.
    pub fn url(&self, bucket: &str, key: &str) -> String {
        let key = utf8_percent_encode(key, PATH_ENCODE_SET);
        let authority = self.authority();
        match self.style {
            AddressingStyle::VirtualHosted => {
                format!("{}://{bucket}.{authority}/{key}", self.scheme)
            }
            AddressingStyle::Path => format!("{}://{authority}/{bucket}/{key}", self.scheme),
        }
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

fn split_host_port(authority: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("the port {p:?} is not a number from 0 to 65535"))
    };
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 host is missing its closing ']'".to_string())?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(parse_port(p)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {after:?} after the IPv6 host")),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, p)) => Ok((host, Some(parse_port(p)?))),
        None => Ok((authority, None)),
    }
}

fn infer_region_from_host(host: &str) -> Option<String> {
    let strip_internal = |r: &str| r.strip_suffix("-internal").unwrap_or(r).to_string();
    let valid = |r: &str| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let labels: Vec<&str> = host.split('.').collect();
    if !host.ends_with(".aliyuncs.com") || labels.len() < 3 {
        return None;
    }
    // `oss-cn-hangzhou[-internal].aliyuncs.com`, possibly behind a bucket label.
    let service = labels[labels.len() - 3];
    if let Some(region) = service.strip_prefix("oss-") {
        let region = strip_internal(region);
        if valid(&region) && !region.starts_with("accelerate") {
            return Some(region);
        }
        return None;
    }
    // `cn-hangzhou[-internal].oss.aliyuncs.com`.
    if service == "oss" && labels.len() >= 4 {
        let region = strip_internal(labels[labels.len() - 4]);
        if valid(&region) {
            return Some(region);
        }
    }
    None
}

/// `s3.<region>.amazonaws.com`, `s3-<region>.amazonaws.com`, `s3.dualstack.<region>...`,
/// possibly behind a bucket label; the global `s3.amazonaws.com` is `us-east-1`.
fn infer_aws_region(labels: &[&str]) -> Option<String> {
    let valid = |r: &str| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let s3 = labels
        .iter()
        .rposition(|l| *l == "s3" || l.starts_with("s3-"))?;
    if let Some(region) = labels[s3].strip_prefix("s3-") {
        return valid(region).then(|| region.to_string());
    }
    let after: Vec<&str> = labels[s3 + 1..labels.len() - 2]
        .iter()
        .copied()
        .filter(|l| *l != "dualstack")
        .collect();
    match after.as_slice() {
        [] => Some("us-east-1".to_string()),
        [region] if valid(region) => Some(region.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        Endpoint::parse(s, None).unwrap()
    }

    #[test]
    fn no_scheme_means_https() {
        let e = ep("oss-cn-hangzhou.aliyuncs.com");
        assert_eq!(e.scheme, "https");
        assert_eq!(e.port, None);
        assert_eq!(ep("http://oss-cn-hangzhou.aliyuncs.com/").scheme, "http");
    }

    #[test]
    fn region_inference() {
        for (endpoint, region) in [
            (
                "http://oss-cn-beijing-internal.aliyuncs.com",
                Some("cn-beijing"),
            ),
            ("oss-cn-hangzhou.aliyuncs.com", Some("cn-hangzhou")),
            (
                "https://oss-ap-southeast-1.aliyuncs.com:443",
                Some("ap-southeast-1"),
            ),
            ("cn-shanghai.oss.aliyuncs.com", Some("cn-shanghai")),
            (
                "http://cn-shanghai-internal.oss.aliyuncs.com:8080",
                Some("cn-shanghai"),
            ),
            ("oss-accelerate.aliyuncs.com", None),
            ("http://127.0.0.1:9000", None),
            ("http://localhost:9000", None),
            ("s3.amazonaws.com", None),
        ] {
            assert_eq!(ep(endpoint).infer_region().as_deref(), region, "{endpoint}");
        }
    }

    #[test]
    fn s3_region_inference() {
        for (endpoint, region) in [
            ("https://s3.eu-west-1.amazonaws.com", Some("eu-west-1")),
            ("bucket.s3.us-west-2.amazonaws.com", Some("us-west-2")),
            ("s3-ap-south-1.amazonaws.com", Some("ap-south-1")),
            (
                "s3.dualstack.ca-central-1.amazonaws.com",
                Some("ca-central-1"),
            ),
            ("s3.amazonaws.com", Some("us-east-1")),
            ("s3.oss-cn-hangzhou.aliyuncs.com", Some("cn-hangzhou")),
            ("s3.x.y.amazonaws.com", None),
            ("ec2.amazonaws.com", None),
            ("http://127.0.0.1:9000", None),
        ] {
            assert_eq!(
                ep(endpoint).infer_s3_region().as_deref(),
                region,
                "{endpoint}"
            );
        }
    }

    #[test]
    fn addressing_style() {
        assert_eq!(
            ep("oss-cn-hangzhou.aliyuncs.com").style,
            AddressingStyle::VirtualHosted
        );
        assert_eq!(ep("http://127.0.0.1:9000").style, AddressingStyle::Path);
        assert_eq!(ep("http://[::1]:9000").style, AddressingStyle::Path);
        assert_eq!(ep("localhost").style, AddressingStyle::Path);
        let forced = Endpoint::parse("minio.example", Some(true)).unwrap();
        assert_eq!(forced.style, AddressingStyle::Path);
    }

    #[test]
    fn urls_encode_keys_and_place_the_bucket() {
        let v = ep("http://oss-cn-hangzhou.aliyuncs.com");
        assert_eq!(
            v.url("bkt", "a b/c+d%e=f&g~h;i/日.txt"),
            "http://bkt.oss-cn-hangzhou.aliyuncs.com/a%20b/c%2Bd%25e%3Df%26g~h%3Bi/%E6%97%A5.txt"
        );
        assert_eq!(v.url("bkt", ""), "http://bkt.oss-cn-hangzhou.aliyuncs.com/");
        let p = ep("http://127.0.0.1:9000");
        assert_eq!(p.url("bkt", "k"), "http://127.0.0.1:9000/bkt/k");
        assert_eq!(ep("http://[::1]:9").url("b", ""), "http://[::1]:9/b/");
    }

    #[test]
    fn bad_endpoints_are_named() {
        for (endpoint, needle) in [
            ("", "empty"),
            ("ftp://host", "scheme"),
            ("http://host/path", "no path"),
            ("http://host:99999", "port"),
            ("http://:80", "host is empty"),
        ] {
            let err = Endpoint::parse(endpoint, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{endpoint}: {err}");
            assert!(err.contains("endpoint"), "{endpoint}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_and_infer_never_panic(s in ".*", style in proptest::option::of(proptest::bool::ANY)) {
            if let Ok(e) = Endpoint::parse(&s, style) {
                let _ = e.infer_region();
                let _ = e.url("bucket", &s);
            }
        }
    }
}
