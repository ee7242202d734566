//! Milvus boolean filter expressions built from [`SearchFilter`]s and id lists. Every
//! user-provided string becomes one escaped string literal, so no id can change the
//! expression's structure (no expression injection).

use std::fmt::Write;

use crate::index::SearchFilter;

/// `captured_ms` of images without a capture time: below every real time, and excluded
/// explicitly whenever a time window is asked for. (Not `i64::MIN`: Milvus parses `-N` as the
/// negation of `N`, and 2^63 does not fit.)
pub(crate) const NO_TIME: i64 = i64::MIN + 1;

/// `s` as a double-quoted Milvus string literal. The grammar accepts C-style escapes; quotes,
/// backslashes and control characters are escaped, everything else (UTF-8 included) is kept.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `field in ["a", "b"]`.
pub(crate) fn is_in(field: &str, values: &[String]) -> String {
    let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
    format!("{field} in [{}]", list.join(", "))
}

/// The expression selecting what `filter` keeps ("" when it keeps everything).
pub(crate) fn filter_expr(filter: &SearchFilter) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !filter.camera_ids.is_empty() {
        parts.push(is_in("camera_id", &filter.camera_ids));
    }
    if filter.captured_from.is_some() || filter.captured_to.is_some() {
        parts.push(format!("captured_ms != {NO_TIME}"));
    }
    if let Some(from) = filter.captured_from {
        parts.push(format!("captured_ms >= {}", from.timestamp_millis()));
    }
    if let Some(to) = filter.captured_to {
        parts.push(format!("captured_ms <= {}", to.timestamp_millis()));
    }
    if !filter.exclude_person_ids.is_empty() {
        parts.push(format!(
            "not ({})",
            is_in("person_id", &filter.exclude_person_ids)
        ));
    }
    if !filter.exclude_image_ids.is_empty() {
        parts.push(format!(
            "not ({})",
            is_in("image_id", &filter.exclude_image_ids)
        ));
    }
    parts
        .into_iter()
        .map(|p| format!("({p})"))
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn quotes_escape_everything_that_could_end_the_literal() {
        assert_eq!(quote("cam-1"), r#""cam-1""#);
        assert_eq!(quote(r#"a" or "1"=="1"#), r#""a\" or \"1\"==\"1""#);
        assert_eq!(quote(r"back\slash"), r#""back\\slash""#);
        assert_eq!(quote("line\nbreak\u{1}"), r#""line\nbreak\u0001""#);
        assert_eq!(quote("Zoë 東"), "\"Zoë 東\"");
    }

    #[test]
    fn filters_become_conjunctions() {
        assert_eq!(filter_expr(&SearchFilter::default()), "");
        let filter = SearchFilter {
            camera_ids: vec!["c1".into(), "c\"2".into()],
            captured_from: Some(Utc.timestamp_millis_opt(1_000).unwrap()),
            captured_to: None,
            exclude_person_ids: vec!["p9".into()],
            exclude_image_ids: vec!["i7".into()],
        };
        assert_eq!(
            filter_expr(&filter),
            format!(
                r#"(camera_id in ["c1", "c\"2"]) and (captured_ms != {NO_TIME}) and (captured_ms >= 1000) and (not (person_id in ["p9"])) and (not (image_id in ["i7"]))"#
            )
        );
    }
}
