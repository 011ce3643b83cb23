//! Credentials from a protocol's environment variables: `OSS_ACCESS_KEY_ID`,
//! `OSS_ACCESS_KEY_SECRET`, `OSS_SESSION_TOKEN`, or AWS's `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (the names are the dialect's).

use super::{process_env, Credential, EnvLookup, ProvideCredential};
use crate::error::Result;
use crate::protocol::dialect::CredentialEnv;
use crate::protocol::OSS;

/// Reads the process environment (or an injected lookup, in tests).
pub(crate) struct EnvProvider {
    names: &'static CredentialEnv,
    lookup: EnvLookup,
}

impl std::fmt::Debug for EnvProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvProvider({})", self.names.access_key_id)
    }
}

/// OSS's variables.
impl Default for EnvProvider {
    fn default() -> Self {
        EnvProvider::with_lookup(&OSS.credential_env, process_env())
    }
}

impl EnvProvider {
    /// A provider reading `names` through `lookup` instead of the process environment.
    pub(crate) fn with_lookup(names: &'static CredentialEnv, lookup: EnvLookup) -> Self {
        EnvProvider { names, lookup }
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }
}

impl ProvideCredential for EnvProvider {
    fn provide_credential(&self) -> Result<Option<Credential>> {
        let (Some(id), Some(secret)) = (
            self.var(self.names.access_key_id),
            self.var(self.names.secret),
        ) else {
            return Ok(None);
        };
        Ok(Some(Credential {
            access_key_id: id,
            access_key_secret: secret,
            security_token: self.var(self.names.session_token),
            expiration: None,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "environment variables {} and {} (not set)",
            self.names.access_key_id, self.names.secret
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::tests::lookup;
    use crate::protocol::dialect::S3;

    fn env(names: &'static CredentialEnv, pairs: &[(&str, &str)]) -> EnvProvider {
        EnvProvider::with_lookup(names, lookup(pairs))
    }

    #[test]
    fn reads_key_pair_and_token() {
        let c = env(
            &OSS.credential_env,
            &[
                ("OSS_ACCESS_KEY_ID", "id"),
                ("OSS_ACCESS_KEY_SECRET", "secret"),
                ("OSS_SESSION_TOKEN", "tok"),
            ],
        )
        .provide_credential()
        .unwrap()
        .unwrap();
        assert_eq!(c.access_key_id, "id");
        assert_eq!(c.access_key_secret, "secret");
        assert_eq!(c.security_token.as_deref(), Some("tok"));
    }

    #[test]
    fn each_protocol_reads_only_its_own_variables() {
        let both = [
            ("OSS_ACCESS_KEY_ID", "oss-id"),
            ("OSS_ACCESS_KEY_SECRET", "oss-secret"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_SESSION_TOKEN", "aws-token"),
        ];
        let aws = env(&S3.credential_env, &both)
            .provide_credential()
            .unwrap()
            .unwrap();
        assert_eq!(aws.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            aws.access_key_secret,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(aws.security_token.as_deref(), Some("aws-token"));
        let oss = env(&OSS.credential_env, &both)
            .provide_credential()
            .unwrap()
            .unwrap();
        assert_eq!(oss.access_key_id, "oss-id");
        assert_eq!(oss.security_token, None);
        assert!(env(&S3.credential_env, &both[..2])
            .provide_credential()
            .unwrap()
            .is_none());
        assert_eq!(
            env(&S3.credential_env, &[]).describe(),
            "environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (not set)"
        );
    }

    #[test]
    fn half_a_pair_is_nothing() {
        for names in [&OSS.credential_env, &S3.credential_env] {
            assert!(env(names, &[(names.access_key_id, "id")])
                .provide_credential()
                .unwrap()
                .is_none());
            assert!(
                env(names, &[(names.access_key_id, "id"), (names.secret, "")])
                    .provide_credential()
                    .unwrap()
                    .is_none()
            );
        }
    }
}
