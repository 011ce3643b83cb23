//! Credentials: what they are, where they come from, and the cache that refreshes them.

mod aws_profile;
mod chain;
mod env;
mod file;
mod ini;

use std::fmt;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};

pub(crate) use aws_profile::SharedCredentialsProvider;
pub(crate) use chain::ChainProvider;
pub(crate) use env::EnvProvider;
pub(crate) use file::FileProvider;

use crate::error::Result;
use crate::protocol::dialect::S3;

/// Reads an environment variable: the process's own, or a map a test injects.
pub(crate) type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment, read when a credential is loaded (not when the provider is made).
pub(crate) fn process_env() -> EnvLookup {
    Arc::new(|name| std::env::var(name).ok())
}

/// Where S3 credentials come from when the caller gives none (`cred_provider`, `cred_path`
/// come first, as for OSS): `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
/// then the `[default]` (or `AWS_PROFILE`) profile of `~/.aws/credentials` (or
/// `AWS_SHARED_CREDENTIALS_FILE`), the order of the AWS CLI and SDKs.
pub(crate) fn aws_default_chain() -> ChainProvider {
    aws_chain(process_env())
}

/// [`aws_default_chain`] reading the environment through `lookup`.
pub(crate) fn aws_chain(lookup: EnvLookup) -> ChainProvider {
    ChainProvider::new()
        .push(Box::new(EnvProvider::with_lookup(
            &S3.credential_env,
            lookup.clone(),
        )))
        .push(Box::new(SharedCredentialsProvider::with_lookup(lookup)))
}

/// An access key pair, optionally with an STS token and its expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// AccessKeyId.
    pub access_key_id: String,
    /// AccessKeySecret; never printed.
    pub access_key_secret: String,
    /// SecurityToken for STS credentials; never printed.
    pub security_token: Option<String>,
    /// When an STS credential stops working.
    pub expiration: Option<DateTime<Utc>>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"******")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "******"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl Credential {
    /// Whether the credential is still usable for at least `margin` after `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        match self.expiration {
            Some(expiry) => now + margin < expiry,
            None => true,
        }
    }
}

/// A source of credentials.
pub trait ProvideCredential: Send + Sync + fmt::Debug {
    /// Returns the credential, `Ok(None)` when this source has nothing ("try the next one"),
    /// or an error when the source is configured but broken (e.g. a malformed file).
    fn provide_credential(&self) -> Result<Option<Credential>>;

    /// Describes the source for "what was tried" messages, e.g. `cred_path /x/y`.
    fn describe(&self) -> String;
}

/// How long before `Expiration` a credential is refreshed.
const REFRESH_MARGIN_SECONDS: i64 = 300;

/// Holds the current credential and asks the provider again when it nears expiry or is
/// invalidated (after the server rejects the token).
#[derive(Debug)]
pub(crate) struct CredentialCache {
    provider: Box<dyn ProvideCredential>,
    current: RwLock<Option<Arc<Credential>>>,
}

impl CredentialCache {
    /// Wraps a provider; nothing is loaded until [`CredentialCache::get`].
    pub(crate) fn new(provider: Box<dyn ProvideCredential>) -> Self {
        CredentialCache {
            provider,
            current: RwLock::new(None),
        }
    }

    /// The current credential, refreshed first when it expires within five minutes.
    ///
    /// # Errors
    /// What the provider reports; a failed refresh is not cached, the next call tries again.
    pub(crate) fn get(&self) -> Result<Arc<Credential>> {
        let margin = Duration::seconds(REFRESH_MARGIN_SECONDS);
        if let Some(c) = self.read_current() {
            if c.is_valid_at(Utc::now(), margin) {
                return Ok(c);
            }
        }
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another thread may have refreshed while this one waited for the lock.
        if let Some(c) = slot.as_ref() {
            if c.is_valid_at(Utc::now(), margin) {
                return Ok(c.clone());
            }
        }
        let fresh = Arc::new(self.load()?);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets `stale` so the next [`CredentialCache::get`] reloads; a no-op when the cache
    /// already moved on to another credential.
    pub(crate) fn invalidate(&self, stale: &Credential) {
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.as_deref() == Some(stale) {
            *slot = None;
        }
    }

    fn read_current(&self) -> Option<Arc<Credential>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn load(&self) -> Result<Credential> {
        match self.provider.provide_credential()? {
            Some(c) => Ok(c),
            None => Err(crate::error::Error::NoCredentials {
                tried: self.provider.describe(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An environment of exactly `pairs`.
    pub(crate) fn lookup(pairs: &[(&str, &str)]) -> EnvLookup {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(move |name| map.get(name).cloned())
    }

    #[test]
    fn the_aws_chain_prefers_the_environment_then_reads_the_file() {
        let home = std::env::temp_dir().join(format!("osstc-aws-chain-{}", std::process::id()));
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::write(
            home.join(".aws/credentials"),
            "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = s\n",
        )
        .unwrap();
        let home = home.display().to_string();
        let env_too = [
            ("HOME", home.as_str()),
            ("AWS_ACCESS_KEY_ID", "FROMENV"),
            ("AWS_SECRET_ACCESS_KEY", "e"),
            // OSS's variables mean nothing to S3's chain.
            ("OSS_ACCESS_KEY_ID", "OSSID"),
            ("OSS_ACCESS_KEY_SECRET", "o"),
        ];
        let got = |pairs: &[(&str, &str)]| {
            aws_chain(lookup(pairs))
                .provide_credential()
                .unwrap()
                .map(|c| c.access_key_id)
        };
        assert_eq!(got(&env_too).as_deref(), Some("FROMENV"));
        assert_eq!(
            got(&[env_too[0], env_too[3], env_too[4]]).as_deref(),
            Some("FROMFILE")
        );
        assert_eq!(got(&[env_too[3], env_too[4]]), None);
        let tried = aws_chain(lookup(&[])).describe();
        assert!(
            tried.starts_with("environment variables AWS_ACCESS_KEY_ID"),
            "{tried}"
        );
        assert!(tried.contains("AWS shared credentials file"), "{tried}");
    }

    #[derive(Debug)]
    struct Counting {
        calls: AtomicUsize,
        lifetime: Option<Duration>,
    }

    impl ProvideCredential for Counting {
        fn provide_credential(&self) -> Result<Option<Credential>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Credential {
                access_key_id: format!("ak{n}"),
                access_key_secret: "sk".into(),
                security_token: None,
                expiration: self.lifetime.map(|d| Utc::now() + d),
            }))
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    fn cache(lifetime: Option<Duration>) -> CredentialCache {
        CredentialCache::new(Box::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime,
        }))
    }

    #[test]
    fn long_lived_credentials_are_loaded_once() {
        let c = cache(Some(Duration::hours(1)));
        assert_eq!(c.get().unwrap().access_key_id, "ak0");
        assert_eq!(c.get().unwrap().access_key_id, "ak0");
    }

    #[test]
    fn credentials_near_expiry_are_refreshed() {
        let c = cache(Some(Duration::seconds(60)));
        assert_eq!(c.get().unwrap().access_key_id, "ak0");
        assert_eq!(c.get().unwrap().access_key_id, "ak1");
    }

    #[test]
    fn invalidate_forces_a_reload_once() {
        let c = cache(None);
        let first = c.get().unwrap();
        c.invalidate(&first);
        let second = c.get().unwrap();
        assert_eq!(second.access_key_id, "ak1");
        c.invalidate(&first); // stale: must not drop the fresh one
        assert_eq!(c.get().unwrap().access_key_id, "ak1");
    }

    #[test]
    fn debug_redacts_secrets() {
        let cred = Credential {
            access_key_id: "LTAIid".into(),
            access_key_secret: "verysecret".into(),
            security_token: Some("tokentoken".into()),
            expiration: None,
        };
        let text = format!("{cred:?}");
        assert!(text.contains("LTAIid"));
        assert!(
            !text.contains("verysecret") && !text.contains("tokentoken"),
            "{text}"
        );
    }
}
