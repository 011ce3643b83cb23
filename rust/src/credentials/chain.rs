//! Tries credential sources in order; the first that has credentials wins.

use super::{Credential, ProvideCredential};
use crate::error::Result;

/// An ordered list of sources.
#[derive(Debug, Default)]
pub(crate) struct ChainProvider {
    sources: Vec<Box<dyn ProvideCredential>>,
}

impl ChainProvider {
    /// An empty chain.
    pub(crate) fn new() -> Self {
        ChainProvider::default()
    }

    /// Appends a source, tried after those already added.
    pub(crate) fn push(mut self, source: Box<dyn ProvideCredential>) -> Self {
        self.sources.push(source);
        self
    }
}

impl ProvideCredential for ChainProvider {
    fn provide_credential(&self) -> Result<Option<Credential>> {
        for source in &self.sources {
            if let Some(c) = source.provide_credential()? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Option<&'static str>);

    impl ProvideCredential for Fixed {
        fn provide_credential(&self) -> Result<Option<Credential>> {
            Ok(self.0.map(|id| Credential {
                access_key_id: id.into(),
                access_key_secret: "s".into(),
                security_token: None,
                expiration: None,
            }))
        }
        fn describe(&self) -> String {
            format!("fixed {:?}", self.0)
        }
    }

    #[test]
    fn first_source_with_credentials_wins() {
        let chain = ChainProvider::new()
            .push(Box::new(Fixed(None)))
            .push(Box::new(Fixed(Some("second"))))
            .push(Box::new(Fixed(Some("third"))));
        let c = chain.provide_credential().unwrap().unwrap();
        assert_eq!(c.access_key_id, "second");
    }

    #[test]
    fn describe_lists_every_source() {
        let chain = ChainProvider::new()
            .push(Box::new(Fixed(None)))
            .push(Box::new(Fixed(None)));
        assert!(chain.provide_credential().unwrap().is_none());
        assert_eq!(chain.describe(), "fixed None; fixed None");
    }
}
