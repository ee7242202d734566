//! Checks of queries and new images shared by every gallery backend, so that the embedded index
//! and Milvus refuse the same inputs with the same errors.

use std::collections::HashSet;

use super::{ImageRecord, IndexError, SearchFilter, SearchParams};

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

/// New images: non-empty ids, no id repeated or already `present`, well-formed vectors.
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
        if present(&record.image_id) || !seen.insert(record.image_id.as_str()) {
            return Err(IndexError::DuplicateImageId(record.image_id.clone()));
        }
        check_vector(vector, dim)?;
    }
    Ok(())
}
