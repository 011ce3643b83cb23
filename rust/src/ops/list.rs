//! ListObjectsV2, one page at a time; OSS and S3 ask and answer alike (`protocol::xml`).
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/listobjectsv2>
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>

use std::collections::VecDeque;

use http::Method;

use crate::error::{Error, Result};
use crate::http::client::OssClient;
use crate::http::request::Request;
use crate::ops::local::LocalStore;
use crate::protocol::xml::{ListBucketResult, ObjectSummary};

/// Keys per page; the server default is 100, which would quadruple list calls.
pub(crate) const MAX_KEYS: u32 = 1000;

/// Pages through the objects under a prefix. Holds only the continuation state, so a listing
/// can be resumed from its continuation token ([`Lister::resume`]).
#[derive(Debug, Clone)]
pub(crate) struct Lister {
    bucket: String,
    prefix: String,
    state: State,
    /// Local-path mode: the rest of the directory walk, handed out a page at a time.
    walked: Option<VecDeque<ObjectSummary>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Start,
    HasMore(String),
    Done,
}

impl Lister {
    /// A listing of every object whose key starts with `prefix` (empty: the whole bucket).
    pub(crate) fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Lister {
            bucket: bucket.into(),
            prefix: prefix.into(),
            state: State::Start,
            walked: None,
        }
    }

    /// A listing that goes on from the page `token` names (`None`: from the start).
    pub(crate) fn resume(
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        token: Option<String>,
    ) -> Self {
        let mut lister = Lister::new(bucket, prefix);
        if let Some(token) = token {
            lister.state = State::HasMore(token);
        }
        lister
    }

    /// The token the next page will be asked with; `None` before the first page and after
    /// the last.
    pub(crate) fn continuation_token(&self) -> Option<&str> {
        match &self.state {
            State::HasMore(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the last page has been returned.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next page, or `None` after the last.
    ///
    /// # Errors
    /// The request's error, or `Protocol` when the answer is not a valid listing.
    pub(crate) async fn next_page(
        &mut self,
        client: &OssClient,
    ) -> Result<Option<Vec<ObjectSummary>>> {
        let token = match &self.state {
            State::Done => return Ok(None),
            State::Start => None,
            State::HasMore(t) => Some(t.clone()),
        };
        if let Some(files) = client.local_store() {
            return self.next_local_page(files, token).await.map(Some);
        }
        let request = self.request(token.as_deref());
        let mut ctx = client.retry_context();
        let page = loop {
            let response = client.send(&request, &mut ctx).await?;
            let parsed = match client.body_bytes(&request.head, response).await {
                Ok(body) => ListBucketResult::parse(&body).map_err(|reason| Error::Protocol {
                    target: client.target_of(&request.head),
                    reason,
                }),
                Err(e) => Err(e),
            };
            match parsed {
                Ok(page) => break page,
                Err(e) => client.backoff(&mut ctx, &e).await.ok_or(e)?,
            }
        };
        self.state = match page.next_continuation_token {
            Some(next) if page.is_truncated => State::HasMore(next),
            _ => State::Done,
        };
        Ok(Some(page.contents))
    }

    /// A page of the directory walk; the token is the last key handed out, so a resumed
    /// listing walks again and goes on after it.
    async fn next_local_page(
        &mut self,
        files: &LocalStore,
        token: Option<String>,
    ) -> Result<Vec<ObjectSummary>> {
        let mut rest = match self.walked.take() {
            Some(rest) => rest,
            None => {
                let mut all: VecDeque<_> = files.list(&self.bucket, &self.prefix).await?.into();
                if let Some(after) = &token {
                    all.retain(|o| o.key.as_str() > after.as_str());
                }
                all
            }
        };
        let take = rest.len().min(MAX_KEYS as usize);
        let page: Vec<_> = rest.drain(..take).collect();
        self.state = match page.last() {
            Some(last) if !rest.is_empty() => State::HasMore(last.key.clone()),
            _ => State::Done,
        };
        self.walked = Some(rest);
        Ok(page)
    }

    fn request(&self, token: Option<&str>) -> Request {
        let mut request = Request::new(Method::GET, &self.bucket, "");
        let head = &mut request.head;
        head.query = vec![
            ("list-type".into(), "2".into()),
            ("prefix".into(), self.prefix.clone()),
            ("max-keys".into(), MAX_KEYS.to_string()),
            ("encoding-type".into(), "url".into()),
        ];
        if let Some(t) = token {
            head.query
                .push(("continuation-token".into(), t.to_string()));
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_asks_for_a_thousand_url_encoded_keys() {
        let l = Lister::new("bkt", "a/b");
        let head = l.request(None).head;
        let q: Vec<(&str, &str)> = head
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            q,
            vec![
                ("list-type", "2"),
                ("prefix", "a/b"),
                ("max-keys", "1000"),
                ("encoding-type", "url")
            ]
        );
        assert_eq!(head.key, "");
        let next = l.request(Some("tok/==")).head;
        assert_eq!(
            next.query.last().unwrap(),
            &("continuation-token".to_string(), "tok/==".to_string())
        );
    }
}
