//! A profile of AWS's shared credentials file: `aws_access_key_id`, `aws_secret_access_key`
//! and `aws_session_token` of `[default]`, or of the profile `AWS_PROFILE` names.
//!
//! <https://docs.aws.amazon.com/sdkref/latest/guide/file-location.html>
//! <https://docs.aws.amazon.com/sdkref/latest/guide/feature-static-credentials.html>
//!
//! The file is `AWS_SHARED_CREDENTIALS_FILE` (a leading `~` is the home directory, as the SDKs
//! expand it), else `~/.aws/credentials`. It is read again on every load, so a key rotated in
//! place is picked up when the server refuses the old one.
//!
//! What the user named must be there: a file named by `AWS_SHARED_CREDENTIALS_FILE`, or a
//! profile named by `AWS_PROFILE`, that cannot be read is an error, as is a malformed file. The
//! default file and profile may be absent (the chain goes on). Only static keys are read: a
//! profile of the `config` file, or one that assumes a role or runs a process, is not.

use std::path::PathBuf;

use super::ini::{self, Section};
use super::{Credential, EnvLookup, ProvideCredential};
use crate::error::{Error, Result};

const FILE_ENV: &str = "AWS_SHARED_CREDENTIALS_FILE";
const PROFILE_ENV: &str = "AWS_PROFILE";
const DEFAULT_FILE: &str = ".aws/credentials";
const DEFAULT_PROFILE: &str = "default";
const KEY_ID: &str = "aws_access_key_id";
const SECRET: &str = "aws_secret_access_key";
const TOKEN: &str = "aws_session_token";
/// The token's older name, which botocore and the CLI still read.
const LEGACY_TOKEN: &str = "aws_security_token";

/// Reads one profile of the shared credentials file, choosing both through `lookup`.
pub(crate) struct SharedCredentialsProvider {
    lookup: EnvLookup,
}

/// Never the file's content: the provider holds none, and prints where it reads from.
impl std::fmt::Debug for SharedCredentialsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedCredentialsProvider")
    }
}

/// The file and profile to read, and whether the user named each.
struct Choice {
    path: PathBuf,
    named_file: bool,
    profile: String,
    named_profile: bool,
}

impl SharedCredentialsProvider {
    /// A provider that finds the file and profile through `lookup`.
    pub(crate) fn with_lookup(lookup: EnvLookup) -> Self {
        SharedCredentialsProvider { lookup }
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// `None` when no file is named and the home directory is unknown.
    fn choice(&self) -> Option<Choice> {
        let home = self.var("HOME").map(PathBuf::from);
        let (path, named_file) = match self.var(FILE_ENV) {
            Some(named) => (expand_home(&named, home.as_ref())?, true),
            None => (home?.join(DEFAULT_FILE), false),
        };
        let (profile, named_profile) = match self.var(PROFILE_ENV) {
            Some(named) => (named.trim().to_string(), true),
            None => (DEFAULT_PROFILE.to_string(), false),
        };
        Some(Choice {
            path,
            named_file,
            profile,
            named_profile,
        })
    }
}

impl Choice {
    fn error(&self, reason: impl Into<String>) -> Error {
        Error::File {
            kind: "credentials",
            path: self.path.display().to_string(),
            reason: format!("profile {:?}: {}", self.profile, reason.into()),
        }
    }

    /// Why the user must fix something rather than the chain go on, when they named it.
    fn named(&self) -> Option<&'static str> {
        if self.named_profile {
            Some(PROFILE_ENV)
        } else if self.named_file {
            Some(FILE_ENV)
        } else {
            None
        }
    }

    fn credential(&self, section: &Section) -> Result<Option<Credential>> {
        let get = |key: &str| section.get(key).filter(|v| !v.is_empty()).cloned();
        match (get(KEY_ID), get(SECRET)) {
            (Some(id), Some(secret)) => Ok(Some(Credential {
                access_key_id: id,
                access_key_secret: secret,
                security_token: get(TOKEN).or_else(|| get(LEGACY_TOKEN)),
                expiration: None,
            })),
            (Some(_), None) => Err(self.error(format!("{KEY_ID} without {SECRET}"))),
            (None, Some(_)) => Err(self.error(format!("{SECRET} without {KEY_ID}"))),
            (None, None) => match self.named() {
                Some(by) => Err(self.error(format!(
                    "no {KEY_ID} and {SECRET} ({by} names it); only static keys are read \
                     from this file, not roles, SSO or credential processes"
                ))),
                None => Ok(None),
            },
        }
    }
}

impl ProvideCredential for SharedCredentialsProvider {
    fn provide_credential(&self) -> Result<Option<Credential>> {
        let Some(choice) = self.choice() else {
            return Ok(None);
        };
        let bytes = match std::fs::read(&choice.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && choice.named().is_none() => {
                return Ok(None)
            }
            Err(e) => return Err(choice.error(format!("the file cannot be read: {e}"))),
        };
        let text =
            std::str::from_utf8(&bytes).map_err(|_| choice.error("the file is not UTF-8 text"))?;
        let sections = ini::parse(text).map_err(|reason| choice.error(reason))?;
        match sections.get(&choice.profile) {
            Some(section) => choice.credential(section),
            None => match choice.named() {
                Some(by) => {
                    let known: Vec<&str> = sections.keys().map(String::as_str).collect();
                    Err(choice.error(format!(
                        "not in the file ({by} names it); its profiles: [{}]",
                        known.join(", ")
                    )))
                }
                None => Ok(None),
            },
        }
    }

    fn describe(&self) -> String {
        match self.choice() {
            Some(c) => format!(
                "AWS shared credentials file {} profile {:?} (not found)",
                c.path.display(),
                c.profile
            ),
            None => format!("AWS shared credentials file (neither {FILE_ENV} nor HOME is set)"),
        }
    }
}

/// `~` or `~/rest` under `home`; `None` when the path needs a home that is unknown.
fn expand_home(path: &str, home: Option<&PathBuf>) -> Option<PathBuf> {
    match path.strip_prefix('~') {
        Some("") => home.cloned(),
        Some(rest) if rest.starts_with('/') => Some(home?.join(&rest[1..])),
        _ => Some(PathBuf::from(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::tests::lookup;

    const SECRET_VALUE: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// A home directory of its own per test, with `.aws/credentials` holding `text`.
    fn home(name: &str, text: Option<&str>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("osstc-aws-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        if let Some(text) = text {
            std::fs::write(dir.join(DEFAULT_FILE), text).unwrap();
        }
        dir
    }

    fn provider(home: &std::path::Path, vars: &[(&str, &str)]) -> SharedCredentialsProvider {
        let home = home.display().to_string();
        let mut all: Vec<(&str, &str)> = vec![("HOME", &home)];
        all.extend_from_slice(vars);
        SharedCredentialsProvider::with_lookup(lookup(&all))
    }

    const FILE: &str = "# aws configure wrote this\n\
        [default]\n\
        aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
        aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
        \n\
        [Temp]\n\
        AWS_ACCESS_KEY_ID=ASIATEMP\n\
        aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
        aws_session_token = IQoJb3JpZ2luX2VjEXAMPLETOKEN+/=\n\
        \n\
        [legacy]\n\
        aws_access_key_id = AKIDLEGACY\n\
        aws_secret_access_key = s\n\
        aws_security_token = old-token\n\
        \n\
        [role]\n\
        role_arn = arn:aws:iam::123456789012:role/r\n\
        source_profile = default\n";

    #[test]
    fn reads_the_default_profile_of_the_home_file() {
        let home = home("default", Some(FILE));
        let c = provider(&home, &[]).provide_credential().unwrap().unwrap();
        assert_eq!(c.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(c.access_key_secret, SECRET_VALUE);
        assert_eq!(c.security_token, None);
        assert_eq!(c.expiration, None);
    }

    #[test]
    fn aws_profile_chooses_a_profile_by_its_exact_name() {
        let home = home("named", Some(FILE));
        let c = provider(&home, &[("AWS_PROFILE", "Temp")])
            .provide_credential()
            .unwrap()
            .unwrap();
        assert_eq!(c.access_key_id, "ASIATEMP");
        assert_eq!(
            c.security_token.as_deref(),
            Some("IQoJb3JpZ2luX2VjEXAMPLETOKEN+/=")
        );
        let legacy = provider(&home, &[("AWS_PROFILE", "legacy")])
            .provide_credential()
            .unwrap()
            .unwrap();
        assert_eq!(legacy.security_token.as_deref(), Some("old-token"));
        // Profile names are case-sensitive.
        let err = provider(&home, &[("AWS_PROFILE", "temp")])
            .provide_credential()
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"temp\""), "{err}");
        assert!(err.contains("[Temp, default, legacy, role]"), "{err}");
    }

    #[test]
    fn the_file_variable_chooses_the_file_and_expands_home() {
        let home = home("file-env", None);
        std::fs::write(home.join("creds.ini"), FILE).unwrap();
        for named in [
            home.join("creds.ini").display().to_string(),
            "~/creds.ini".into(),
        ] {
            let c = provider(&home, &[("AWS_SHARED_CREDENTIALS_FILE", &named)])
                .provide_credential()
                .unwrap()
                .unwrap();
            assert_eq!(c.access_key_id, "AKIAIOSFODNN7EXAMPLE", "{named}");
        }
    }

    #[test]
    fn what_was_not_named_may_be_absent() {
        let no_file = home("absent", None);
        assert!(provider(&no_file, &[])
            .provide_credential()
            .unwrap()
            .is_none());
        let other = home(
            "other",
            Some("[dev]\naws_access_key_id=a\naws_secret_access_key=b\n"),
        );
        assert!(provider(&other, &[])
            .provide_credential()
            .unwrap()
            .is_none());
        // A default profile without keys (a role, say) leaves it to the next source too.
        let keyless = home("keyless", Some("[default]\nregion = us-east-1\n"));
        assert!(provider(&keyless, &[])
            .provide_credential()
            .unwrap()
            .is_none());
        // Neither HOME nor the file variable: nothing to read.
        let nowhere = SharedCredentialsProvider::with_lookup(lookup(&[]));
        assert!(nowhere.provide_credential().unwrap().is_none());
        assert!(
            nowhere.describe().contains("nor HOME"),
            "{}",
            nowhere.describe()
        );
        let described = provider(&no_file, &[]).describe();
        assert!(described.contains(".aws/credentials"), "{described}");
        assert!(described.contains("\"default\""), "{described}");
    }

    #[test]
    fn what_was_named_must_be_there() {
        let home = home("must", Some(FILE));
        let missing = home.join("nope");
        let missing = missing.display().to_string();
        for (vars, needles) in [
            (
                vec![("AWS_SHARED_CREDENTIALS_FILE", missing.as_str())],
                vec![missing.as_str(), "cannot be read"],
            ),
            (
                vec![("AWS_PROFILE", "prod")],
                vec!["\"prod\"", "AWS_PROFILE", "not in the file"],
            ),
            (
                vec![("AWS_PROFILE", "role")],
                vec!["\"role\"", "no aws_access_key_id", "not roles"],
            ),
            (
                vec![
                    ("AWS_PROFILE", "x"),
                    ("AWS_SHARED_CREDENTIALS_FILE", missing.as_str()),
                ],
                vec![missing.as_str(), "\"x\""],
            ),
        ] {
            let err = provider(&home, &vars).provide_credential().unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::InvalidInput);
            let text = err.to_string();
            for needle in needles {
                assert!(text.contains(needle), "{vars:?}: {text}");
            }
        }
        // Naming the absent file's default profile is naming it too.
        let empty = self::home("must-empty", None);
        let err = provider(&empty, &[("AWS_PROFILE", "default")])
            .provide_credential()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be read"), "{err}");
    }

    #[test]
    fn malformed_files_are_errors_naming_file_and_profile_never_the_secret() {
        for (name, text, needle) in [
            (
                "no-section",
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                "line 1",
            ),
            (
                "no-equals",
                "[default]\naws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                "line 2",
            ),
            (
                "half",
                "[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                "aws_secret_access_key without aws_access_key_id",
            ),
            (
                "other-half",
                "[default]\naws_access_key_id = AKID\n",
                "aws_access_key_id without aws_secret_access_key",
            ),
        ] {
            let home = home(name, Some(text));
            let err = provider(&home, &[]).provide_credential().unwrap_err();
            let path = home.join(DEFAULT_FILE).display().to_string();
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(shown.contains(needle), "{name}: {shown}");
                assert!(!shown.contains("wJalrXUtnFEMI"), "{name}: {shown}");
            }
            let text = err.to_string();
            assert!(text.contains(&path), "{name}: {text}");
            assert!(text.contains("profile \"default\""), "{name}: {text}");
        }
        let binary = home("binary", None);
        std::fs::write(binary.join(DEFAULT_FILE), [0xff, 0xfe, b'\n']).unwrap();
        let err = provider(&binary, &[]).provide_credential().unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let home = home("debug", Some(FILE));
        let p = provider(&home, &[("AWS_PROFILE", "Temp")]);
        let c = p.provide_credential().unwrap().unwrap();
        for shown in [format!("{p:?}"), format!("{c:?}"), p.describe()] {
            assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
            assert!(!shown.contains("IQoJb3JpZ2lu"), "{shown}");
        }
    }

    #[test]
    fn home_expansion() {
        let home = PathBuf::from("/home/u");
        assert_eq!(expand_home("~", Some(&home)), Some(home.clone()));
        assert_eq!(
            expand_home("~/a/b", Some(&home)),
            Some(PathBuf::from("/home/u/a/b"))
        );
        assert_eq!(expand_home("~/a", None), None);
        assert_eq!(expand_home("/x/~/y", None), Some(PathBuf::from("/x/~/y")));
        // Only the user's own home is expanded, not `~user`.
        assert_eq!(expand_home("~u/x", None), Some(PathBuf::from("~u/x")));
    }
}
