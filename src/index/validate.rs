//! Checks of queries and new images shared by every gallery backend, so that the embedded index
//! and Milvus refuse the same inputs with the same errors.

use std::collections::HashSet;

use super::ImageRecord;
use super::IndexError;
use super::SearchFilter;
use super::SearchParams;

/// Ids echoed in an error message: at most this many ...
const LISTED_IDS: usize = 10;
/// ... each cut to this many characters.
const LISTED_ID_CHARS: usize = 64;

/// `ids` for an error message, bounded whatever the caller sent: the first few, each shortened
/// and with control characters escaped (messages end up in text logs), then how many more.
pub(crate) fn list_ids(ids: &[String]) -> String {
    let mut listed: Vec<String> = ids.iter().take(LISTED_IDS).map(|id| quote_id(id)).collect();
    if ids.len() > LISTED_IDS {
        listed.push(format!("and {} more", ids.len() - LISTED_IDS));
    }
    listed.join(", ")
}

/// One id, shortened and escaped, in backquotes.
pub(crate) fn quote_id(id: &str) -> String {
    let mut shown: String = id.chars().take(LISTED_ID_CHARS).collect();
    if shown.len() < id.len() {
        shown.push('…');
    }
    format!("`{}`", shown.escape_debug())
}

/// A vector of the gallery's dimension with finite values.
pub(crate) fn check_vector(v: &[f32], dim: usize) -> Result<(), IndexError> {
    if v.len() != dim {
        return Err(IndexError::Dimension {
            expected: dim,
            got: v.len(),
        });
    }
    if !v.iter().all(|x| x.is_finite()) {
        return Err(IndexError::NonFinite);
    }
    Ok(())
}

/// A well-formed search: query of the right dimension, `top_k` and `ef` at least 1, a
/// satisfiable filter.
pub(crate) fn check_search(
    query: &[f32],
    dim: usize,
    params: &SearchParams,
    filter: &SearchFilter,
) -> Result<(), IndexError> {
    check_vector(query, dim)?;
    if params.top_k == 0 {
        return Err(IndexError::InvalidParams("top_k must be at least 1".into()));
    }
    if params.ef == Some(0) {
        return Err(IndexError::InvalidParams("ef must be at least 1".into()));
    }
    filter.validate()
}

/// New images: non-empty ids, records within their size limits, no id repeated or already
/// `present`, well-formed vectors.
pub(crate) fn check_new_items(
    items: &[(ImageRecord, Vec<f32>)],
    dim: usize,
    present: impl Fn(&str) -> bool,
) -> Result<(), IndexError> {
    let mut seen = HashSet::new();
    for (record, vector) in items {
        if record.image_id.is_empty() || record.person_id.is_empty() {
            return Err(IndexError::InvalidRecord(format!(
                "image id and person id must be non-empty (image `{}`, person `{}`)",
                record.image_id, record.person_id
            )));
        }
        record.check_sizes().map_err(IndexError::RecordTooLarge)?;
        if present(&record.image_id) || !seen.insert(record.image_id.as_str()) {
            return Err(IndexError::DuplicateImageId(record.image_id.clone()));
        }
        check_vector(vector, dim)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_ids_are_bounded_and_escaped() {
        let ids: Vec<String> = (0..100_000).map(|i| format!("id-{i}\nforged")).collect();
        let listed = list_ids(&ids);
        assert!(listed.len() < 400, "{listed}");
        assert!(listed.ends_with("and 99990 more"), "{listed}");
        assert!(!listed.contains('\n') && listed.contains("\\n"), "{listed}");
        let long = quote_id(&"x".repeat(1 << 20));
        assert!(long.len() < 80 && long.ends_with("…`"), "{long}");
    }
}
