//! Credentials from `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and `OSS_SESSION_TOKEN`.

use super::{Credential, ProvideCredential};
use crate::error::Result;

/// Environment variable holding the AccessKeyId.
pub(crate) const ENV_ACCESS_KEY_ID: &str = "OSS_ACCESS_KEY_ID";
/// Environment variable holding the AccessKeySecret.
pub(crate) const ENV_ACCESS_KEY_SECRET: &str = "OSS_ACCESS_KEY_SECRET";
/// Environment variable holding the STS token.
pub(crate) const ENV_SESSION_TOKEN: &str = "OSS_SESSION_TOKEN";

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads the process environment (or an injected lookup, in tests).
pub(crate) struct EnvProvider {
    lookup: Lookup,
}

impl std::fmt::Debug for EnvProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvProvider")
    }
}

impl Default for EnvProvider {
    fn default() -> Self {
        EnvProvider {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }
}

impl EnvProvider {
    /// A provider reading `lookup` instead of the process environment.
    #[cfg(test)]
    pub(crate) fn with_lookup(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        EnvProvider {
            lookup: Box::new(lookup),
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }
}

impl ProvideCredential for EnvProvider {
    fn provide_credential(&self) -> Result<Option<Credential>> {
        let (Some(id), Some(secret)) =
            (self.var(ENV_ACCESS_KEY_ID), self.var(ENV_ACCESS_KEY_SECRET))
        else {
            return Ok(None);
        };
        Ok(Some(Credential {
            access_key_id: id,
            access_key_secret: secret,
            security_token: self.var(ENV_SESSION_TOKEN),
            expiration: None,
        }))
    }

    fn describe(&self) -> String {
        format!("environment variables {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} (not set)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> EnvProvider {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvProvider::with_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn reads_key_pair_and_token() {
        let c = env(&[
            (ENV_ACCESS_KEY_ID, "id"),
            (ENV_ACCESS_KEY_SECRET, "secret"),
            (ENV_SESSION_TOKEN, "tok"),
        ])
        .provide_credential()
        .unwrap()
        .unwrap();
        assert_eq!(c.access_key_id, "id");
        assert_eq!(c.access_key_secret, "secret");
        assert_eq!(c.security_token.as_deref(), Some("tok"));
    }

    #[test]
    fn half_a_pair_is_nothing() {
        assert!(env(&[(ENV_ACCESS_KEY_ID, "id")])
            .provide_credential()
            .unwrap()
            .is_none());
        assert!(
            env(&[(ENV_ACCESS_KEY_ID, "id"), (ENV_ACCESS_KEY_SECRET, "")])
                .provide_credential()
                .unwrap()
                .is_none()
        );
    }
}
