//! A Python object with `get_credentials()` (the oss2 / alibabacloud provider shape) as a
//! credential source.

use pyo3::prelude::*;

use crate::credentials::{Credential, ProvideCredential};
use crate::error::{Error, Result};

/// Wraps the user's provider object.
#[derive(Debug)]
pub(crate) struct PyCredentialProvider {
    provider: Py<PyAny>,
    type_name: String,
}

impl PyCredentialProvider {
    pub(crate) fn new(provider: &Bound<'_, PyAny>) -> PyResult<Self> {
        let type_name = provider.get_type().name()?.to_string();
        if !provider.hasattr("get_credentials")? {
            return Err(Error::CredentialProvider {
                provider: type_name,
                reason: "it has no get_credentials() method".into(),
            }
            .into());
        }
        Ok(PyCredentialProvider {
            provider: provider.clone().unbind(),
            type_name,
        })
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::CredentialProvider {
            provider: self.type_name.clone(),
            reason: reason.into(),
        }
    }

    fn text(&self, creds: &Bound<'_, PyAny>, attr: &str) -> Result<Option<String>> {
        let value = creds
            .getattr(attr)
            .map_err(|_| self.fail(format!("its credentials have no attribute {attr}")))?;
        if value.is_none() {
            return Ok(None);
        }
        value
            .extract::<String>()
            .map(|s| Some(s).filter(|s| !s.is_empty()))
            .map_err(|_| self.fail(format!("{attr} is not a str")))
    }
}

impl ProvideCredential for PyCredentialProvider {
    fn provide_credential(&self) -> Result<Option<Credential>> {
        Python::attach(|py| {
            let creds = self
                .provider
                .bind(py)
                .call_method0("get_credentials")
                // The exception text is the provider's own; it is not ours to echo secrets from.
                .map_err(|e| {
                    self.fail(format!(
                        "get_credentials() raised {}",
                        e.get_type(py)
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ))
                })?;
            let id = self.text(&creds, "access_key_id")?;
            let secret = self.text(&creds, "access_key_secret")?;
            let (Some(access_key_id), Some(access_key_secret)) = (id, secret) else {
                return Err(self.fail("access_key_id or access_key_secret is empty"));
            };
            Ok(Some(Credential {
                access_key_id,
                access_key_secret,
                security_token: self.text(&creds, "security_token")?,
                expiration: None,
            }))
        })
    }

    fn describe(&self) -> String {
        format!("cred_provider {}", self.type_name)
    }
}
