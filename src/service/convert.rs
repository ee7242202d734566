//! Conversions between the protobuf messages and the index's types, with the validation that
//! turns malformed requests into INVALID_ARGUMENT messages naming the field.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use super::gallery::Ranked;
use super::infer::Embedded;
use super::{Limits, ServiceError};
use crate::index::{ImageHit, ImageRecord, PersonHit, SearchFilter, SearchParams};
use crate::proto;

/// The one query of a Search.
#[derive(Debug)]
pub enum Query {
    /// A description.
    Text(String),
    /// Encoded image bytes.
    Image(Vec<u8>),
    /// A gallery image, whose stored embedding is the query.
    ImageId(String),
}

/// Takes the query out of a request: exactly one of `text`, `image` and `image_id` must be set.
pub fn take_query(req: &mut proto::SearchRequest) -> Result<Query, ServiceError> {
    let given: Vec<&str> = [
        (!req.text.is_empty()).then_some("text"),
        (!req.image.is_empty()).then_some("image"),
        (!req.image_id.is_empty()).then_some("image_id"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        ["text"] => Ok(Query::Text(std::mem::take(&mut req.text))),
        ["image"] => Ok(Query::Image(std::mem::take(&mut req.image))),
        ["image_id"] => Ok(Query::ImageId(std::mem::take(&mut req.image_id))),
        [] => Err(invalid(
            "give exactly one query: text, image or image_id (none was set)".into(),
        )),
        several => Err(invalid(format!(
            "give exactly one query: text, image or image_id ({} were set)",
            several.join(" and ")
        ))),
    }
}

/// Search parameters from a request, with defaults applied and limits checked.
pub fn search_params(
    req: &proto::SearchRequest,
    limits: &Limits,
) -> Result<SearchParams, ServiceError> {
    let top_k = match req.top_k {
        0 => limits.default_top_k,
        k if k > limits.max_top_k => {
            return Err(invalid(format!(
                "top_k is {k}; it must be between 1 and {} (0 means the default, {})",
                limits.max_top_k, limits.default_top_k
            )))
        }
        k => k,
    };
    if req.ef > limits.max_ef {
        return Err(invalid(format!(
            "ef is {}; at most {} (0 means the index default)",
            req.ef, limits.max_ef
        )));
    }
    Ok(SearchParams {
        top_k: top_k as usize,
        ef: (req.ef > 0).then_some(req.ef as usize),
        exact: req.exact,
    })
}

/// Whether results are grouped by person; unknown enum values are rejected.
pub fn group_by_person(req: &proto::SearchRequest) -> Result<bool, ServiceError> {
    match proto::GroupBy::try_from(req.group_by) {
        Ok(proto::GroupBy::PersonUnspecified) => Ok(true),
        Ok(proto::GroupBy::Image) => Ok(false),
        Err(_) => Err(invalid(format!(
            "group_by {} is not a known value (0 = PERSON, 1 = IMAGE)",
            req.group_by
        ))),
    }
}

/// The index filter of a request; empty or inconsistent fields are rejected.
pub fn filter(f: Option<&proto::Filter>) -> Result<SearchFilter, ServiceError> {
    let Some(f) = f else {
        return Ok(SearchFilter::default());
    };
    if f.camera_ids.iter().any(|c| c.is_empty()) {
        return Err(invalid("filter.camera_ids contains an empty id".into()));
    }
    if f.exclude_person_ids.iter().any(|p| p.is_empty()) {
        return Err(invalid(
            "filter.exclude_person_ids contains an empty id".into(),
        ));
    }
    let from = f
        .captured_from
        .as_ref()
        .map(|t| datetime(t, "filter.captured_from"))
        .transpose()?;
    let to = f
        .captured_to
        .as_ref()
        .map(|t| datetime(t, "filter.captured_to"))
        .transpose()?;
    if let (Some(a), Some(b)) = (from, to) {
        if a > b {
            return Err(invalid(format!(
                "filter.captured_from ({a}) is after filter.captured_to ({b})"
            )));
        }
    }
    Ok(SearchFilter {
        camera_ids: f.camera_ids.clone(),
        captured_from: from,
        captured_to: to,
        exclude_person_ids: f.exclude_person_ids.clone(),
        exclude_image_ids: Vec::new(),
    })
}

/// A gallery record from an AddImages message (`n` is its position in the stream).
pub fn record(req: &proto::AddImageRequest, n: usize) -> Result<ImageRecord, ServiceError> {
    if req.image_id.is_empty() {
        return Err(invalid(format!("image #{n}: image_id is required")));
    }
    if req.person_id.is_empty() {
        return Err(invalid(format!(
            "image #{n} ({}): person_id is required",
            req.image_id
        )));
    }
    let field = format!("image #{n} ({}): captured_at", req.image_id);
    Ok(ImageRecord {
        image_id: req.image_id.clone(),
        person_id: req.person_id.clone(),
        camera_id: non_empty(&req.camera_id),
        captured_at: req
            .captured_at
            .as_ref()
            .map(|t| datetime(t, &field))
            .transpose()?,
        path: non_empty(&req.path),
        attributes: req.attributes.clone().into_iter().collect(),
    })
}

/// Protobuf results of a search.
pub fn results(ranked: Ranked) -> Vec<proto::SearchResult> {
    match ranked {
        Ranked::Persons(hits) => hits.into_iter().map(person_result).collect(),
        Ranked::Images(hits) => hits.into_iter().map(image_result).collect(),
    }
}

/// Leaves out the lowest-ranked results of `response` until it encodes in at most `max` bytes,
/// and says so in `results_cut`: a gallery's metadata is bounded per record, but a top_k of
/// persons with their matching images could still outgrow what a client accepts.
pub fn fit_response(response: &mut proto::SearchResponse, max: usize) {
    use prost::Message;
    if response.encoded_len() <= max {
        return;
    }
    // Set first, so that the flag's own bytes are counted in the size below.
    response.results_cut = true;
    let sizes: Vec<usize> = response
        .results
        .iter()
        .map(|r| prost::encoding::message::encoded_len(1, r))
        .collect();
    let mut size = response.encoded_len() - sizes.iter().sum::<usize>();
    let keep = sizes
        .iter()
        .take_while(|&&n| {
            size += n;
            size <= max
        })
        .count();
    response.results.truncate(keep);
}

fn person_result(hit: PersonHit) -> proto::SearchResult {
    let images: Vec<proto::ImageMatch> = hit.images.into_iter().map(image_match).collect();
    let best = images.first().cloned().unwrap_or_default();
    proto::SearchResult {
        person_id: hit.person_id,
        score: hit.score,
        image_id: best.image_id,
        camera_id: best.camera_id,
        captured_at: best.captured_at,
        images,
    }
}

fn image_result(hit: ImageHit) -> proto::SearchResult {
    let person_id = hit.record.person_id.clone();
    let m = image_match(hit);
    proto::SearchResult {
        person_id,
        score: m.score,
        image_id: m.image_id.clone(),
        camera_id: m.camera_id.clone(),
        captured_at: m.captured_at,
        images: vec![m],
    }
}

fn image_match(hit: ImageHit) -> proto::ImageMatch {
    let r = hit.record;
    proto::ImageMatch {
        image_id: r.image_id,
        score: hit.score,
        camera_id: r.camera_id.unwrap_or_default(),
        captured_at: r.captured_at.map(timestamp),
        path: r.path.unwrap_or_default(),
    }
}

/// Stage timings of a request in microseconds.
pub fn timing(e: &Embedded, search: Duration, total: Duration) -> proto::Timing {
    proto::Timing {
        tokenize_us: micros(e.tokenize),
        queue_us: micros(e.queue),
        encode_us: micros(e.encode),
        search_us: micros(search),
        total_us: micros(total),
        decode_us: micros(e.decode),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A protobuf timestamp of a UTC time.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn datetime(t: &Timestamp, field: &str) -> Result<DateTime<Utc>, ServiceError> {
    u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| {
            invalid(format!(
                "{field} is not a valid timestamp (seconds {}, nanos {})",
                t.seconds, t.nanos
            ))
        })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn invalid(message: String) -> ServiceError {
    ServiceError::InvalidArgument(message)
}
