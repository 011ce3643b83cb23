//! The INI dialect of AWS's shared `credentials` file: `[profile]` sections of `key = value`.
//!
//! <https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html>
//!
//! - `#` or `;` starts a comment line; after a section header or a value it starts a comment
//!   when whitespace precedes it (secrets and tokens never hold whitespace, so none is cut).
//! - Section names are case-sensitive, as the SDKs match profiles; keys are not (the CLI reads
//!   `AWS_Access_Key_ID` too), so keys are lowercased.
//! - Surrounding whitespace and indentation are ignored; a repeated section adds to the first,
//!   a repeated key replaces its value.
//!
//! Errors name a line number, never the line: it may hold a secret.

use std::collections::BTreeMap;

/// The properties of one section, keys lowercased.
pub(crate) type Section = BTreeMap<String, String>;

/// Every section of a file, by name.
pub(crate) type Sections = BTreeMap<String, Section>;

/// Parses the text of a shared credentials file.
///
/// # Errors
/// `line N: ...` for a line that is neither a section header, a `key = value` inside a section,
/// a comment nor blank.
pub(crate) fn parse(text: &str) -> Result<Sections, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let (name, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("line {number}: a section header without its ']'"))?;
            if !strip_comment(after).is_empty() {
                return Err(format!("line {number}: text after a section header"));
            }
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("line {number}: a section without a name"));
            }
            sections.entry(name.to_string()).or_default();
            current = Some(name.to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {number} is neither a [section], a key = value nor a comment"
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("line {number}: a value without a key"));
        }
        let Some(section) = current.as_ref() else {
            return Err(format!("line {number}: a key before the first [section]"));
        };
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.to_ascii_lowercase(), strip_comment(value).to_string());
    }
    Ok(sections)
}

/// `text` up to a `#` or `;` that follows whitespace (or starts it), trimmed.
fn strip_comment(text: &str) -> &str {
    let mut previous_blank = true;
    for (at, c) in text.char_indices() {
        if (c == '#' || c == ';') && previous_blank {
            return text[..at].trim();
        }
        previous_blank = c.is_whitespace();
    }
    text.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(sections: &'a Sections, name: &str, key: &str) -> Option<&'a str> {
        sections.get(name)?.get(key).map(String::as_str)
    }

    #[test]
    fn reads_sections_comments_and_whitespace() {
        let text = "\u{feff}# written by aws configure\r\n\
            [default]\r\n\
            aws_access_key_id=AKIDEXAMPLE\r\n\
            aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\r\n\
            \r\n\
            ; another profile\n\
            [ dev ]   # trailing comment\n\
            \tAWS_Access_Key_ID =  AKIDDEV \n\
            Aws_Secret_Access_Key=s3cr3t/with=equals ; comment\n\
            aws_session_token = tok#en+/=\n";
        let sections = parse(text).unwrap();
        assert_eq!(sections.len(), 2);
        assert_eq!(
            get(&sections, "default", "aws_access_key_id"),
            Some("AKIDEXAMPLE")
        );
        assert_eq!(
            get(&sections, "default", "aws_secret_access_key"),
            Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        );
        assert_eq!(get(&sections, "dev", "aws_access_key_id"), Some("AKIDDEV"));
        // Only the first `=` separates; a `;` after whitespace starts a comment.
        assert_eq!(
            get(&sections, "dev", "aws_secret_access_key"),
            Some("s3cr3t/with=equals")
        );
        // A `#` inside a value is part of it.
        assert_eq!(
            get(&sections, "dev", "aws_session_token"),
            Some("tok#en+/=")
        );
    }

    #[test]
    fn section_names_keep_their_case_and_repeats_merge() {
        let sections = parse("[Prod]\na=1\n[prod]\na=2\n[Prod]\nb=3\na=4\n[empty]\n").unwrap();
        assert_eq!(get(&sections, "Prod", "a"), Some("4"));
        assert_eq!(get(&sections, "Prod", "b"), Some("3"));
        assert_eq!(get(&sections, "prod", "a"), Some("2"));
        assert_eq!(sections.get("empty").map(BTreeMap::len), Some(0));
        assert_eq!(get(&sections, "Prod", "key="), None);
        assert_eq!(parse("").unwrap().len(), 0);
        assert_eq!(parse("# only\n; comments\n\n").unwrap().len(), 0);
        assert_eq!(get(&parse("[p]\nk =\n").unwrap(), "p", "k"), Some(""));
    }

    #[test]
    fn malformed_lines_are_named_by_number_without_their_text() {
        for (text, line, what) in [
            (
                "aws_secret_access_key = hunter2\n[default]\n",
                "line 1",
                "before the first",
            ),
            (
                "[default]\naws_secret_access_key hunter2\n",
                "line 2",
                "neither",
            ),
            (
                "[default\naws_secret_access_key = hunter2\n",
                "line 1",
                "without its ']'",
            ),
            ("[default] hunter2\n", "line 1", "after a section header"),
            ("[]\n", "line 1", "without a name"),
            ("[default]\n\n = hunter2\n", "line 3", "without a key"),
            ("[default]\n  hunter2continued\n", "line 2", "neither"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(line), "{text:?}: {err}");
            assert!(err.contains(what), "{text:?}: {err}");
            assert!(!err.contains("hunter2"), "{text:?}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
            let _ = parse(&text);
        }
    }
}
