//! Search results and the grouping of image hits into person hits.

use std::collections::HashMap;

use crate::index::ImageRecord;
use crate::index::IndexError;

/// One gallery image that matched a query.
#[derive(Debug, Clone)]
pub struct ImageHit {
    /// The image's metadata.
    pub record: ImageRecord,
    /// Cosine similarity to the query (dot product of L2-normalised vectors), higher is better.
    pub score: f32,
}

/// One person that matched a query: scored by their best image, with their matching images.
#[derive(Debug, Clone)]
pub struct PersonHit {
    /// The person's id.
    pub person_id: String,
    /// Score of the person's best image.
    pub score: f32,
    /// The person's matching images, best first.
    pub images: Vec<ImageHit>,
}

/// Groups image hits (best first) by person, keeping persons in order of their best image,
/// and returns at most `top_k` persons.
pub(crate) fn group_by_person(hits: Vec<ImageHit>, top_k: usize) -> Vec<PersonHit> {
    let mut persons: Vec<PersonHit> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for hit in hits {
        match position.get(&hit.record.person_id) {
            Some(&i) => persons[i].images.push(hit),
            None => {
                if persons.len() == top_k {
                    continue;
                }
                position.insert(hit.record.person_id.clone(), persons.len());
                persons.push(PersonHit {
                    person_id: hit.record.person_id.clone(),
                    score: hit.score,
                    images: vec![hit],
                });
            }
        }
    }
    persons
}

/// The `top_k` best persons from `search(k)`, which returns the best `k` images: persons have
/// several images each, so fetch a multiple of top_k images and widen until enough distinct
/// persons are found or the gallery (`len` images, at most `max_k` per search) is exhausted.
pub(crate) fn persons_by_widening(
    top_k: usize,
    len: usize,
    max_k: usize,
    mut search: impl FnMut(usize) -> Result<Vec<ImageHit>, IndexError>,
) -> Result<Vec<PersonHit>, IndexError> {
    let mut k = top_k.saturating_mul(4).clamp(16, max_k);
    loop {
        let found = search(k)?;
        let exhausted = found.len() < k || k >= len || k >= max_k;
        let persons = group_by_person(found, top_k);
        if persons.len() >= top_k || exhausted {
            return Ok(persons);
        }
        k = k.saturating_mul(4).min(len).min(max_k);
    }
}
