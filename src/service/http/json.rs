//! The JSON mapping of the `ivt.v1` messages used by the HTTP API: request bodies are parsed
//! into the protobuf requests (so the gRPC handlers validate them), responses are written from
//! the protobuf responses. Field names are the .proto's; bytes are base64 and timestamps
//! RFC 3339 strings, as in the protobuf JSON mapping.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::convert::timestamp;
use super::super::ServiceError;
use crate::proto;

/// `POST /v1/search`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    text: Option<String>,
    /// Base64 of the encoded image.
    image: Option<String>,
    image_id: Option<String>,
    top_k: Option<u32>,
    group_by: Option<GroupBy>,
    filter: Option<Filter>,
    ef: Option<u32>,
    exact: Option<bool>,
}

/// `group_by`: "person" (default) or "image"; the .proto's enum names are accepted too.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum GroupBy {
    #[serde(alias = "GROUP_BY_PERSON_UNSPECIFIED", alias = "PERSON")]
    Person,
    #[serde(alias = "GROUP_BY_IMAGE", alias = "IMAGE")]
    Image,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    camera_ids: Vec<String>,
    captured_from: Option<DateTime<Utc>>,
    captured_to: Option<DateTime<Utc>>,
    #[serde(default)]
    exclude_person_ids: Vec<String>,
}

/// `POST /v1/encode/text`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeTextRequest {
    texts: Vec<String>,
}

/// `POST /v1/encode/image`: base64 of each encoded image.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeImageRequest {
    images: Vec<String>,
}

/// Parses a JSON request body; malformed JSON is INVALID_ARGUMENT with serde's message (which
/// names the field and position).
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    serde_json::from_slice(body)
        .map_err(|e| ServiceError::InvalidArgument(format!("invalid JSON body: {e}")))
}

fn base64(field: &str, s: &str) -> Result<Vec<u8>, ServiceError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| ServiceError::InvalidArgument(format!("{field} is not valid base64: {e}")))
}

impl SearchRequest {
    /// The protobuf request.
    pub fn into_proto(self) -> Result<proto::SearchRequest, ServiceError> {
        let image = match &self.image {
            Some(b) => base64("image", b)?,
            None => Vec::new(),
        };
        let group_by = match self.group_by.unwrap_or(GroupBy::Person) {
            GroupBy::Person => proto::GroupBy::PersonUnspecified,
            GroupBy::Image => proto::GroupBy::Image,
        };
        Ok(proto::SearchRequest {
            text: self.text.unwrap_or_default(),
            top_k: self.top_k.unwrap_or(0),
            group_by: group_by as i32,
            filter: self.filter.map(|f| proto::Filter {
                camera_ids: f.camera_ids,
                captured_from: f.captured_from.map(timestamp),
                captured_to: f.captured_to.map(timestamp),
                exclude_person_ids: f.exclude_person_ids,
            }),
            ef: self.ef.unwrap_or(0),
            exact: self.exact.unwrap_or(false),
            image,
            image_id: self.image_id.unwrap_or_default(),
        })
    }
}

impl EncodeTextRequest {
    /// The protobuf request.
    pub fn into_proto(self) -> proto::EncodeTextRequest {
        proto::EncodeTextRequest { texts: self.texts }
    }
}

impl EncodeImageRequest {
    /// The protobuf request; each image is decoded from base64.
    pub fn into_proto(self) -> Result<proto::EncodeImageRequest, ServiceError> {
        let images = self
            .images
            .iter()
            .enumerate()
            .map(|(i, b)| base64(&format!("images[{i}]"), b))
            .collect::<Result<_, _>>()?;
        Ok(proto::EncodeImageRequest { images })
    }
}

fn time(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
}

fn timing(t: Option<&proto::Timing>) -> Value {
    let t = t.cloned().unwrap_or_default();
    json!({
        "tokenize_us": t.tokenize_us,
        "decode_us": t.decode_us,
        "queue_us": t.queue_us,
        "encode_us": t.encode_us,
        "search_us": t.search_us,
        "total_us": t.total_us,
    })
}

/// `POST /v1/search`'s answer.
pub fn search_response(r: &proto::SearchResponse) -> Value {
    let results: Vec<Value> = r
        .results
        .iter()
        .map(|p| {
            let images: Vec<Value> = p
                .images
                .iter()
                .map(|m| {
                    json!({
                        "image_id": m.image_id,
                        "score": m.score,
                        "camera_id": m.camera_id,
                        "captured_at": time(m.captured_at.as_ref()),
                        "path": m.path,
                    })
                })
                .collect();
            json!({
                "person_id": p.person_id,
                "score": p.score,
                "image_id": p.image_id,
                "camera_id": p.camera_id,
                "captured_at": time(p.captured_at.as_ref()),
                "images": images,
            })
        })
        .collect();
    json!({
        "results": results,
        "timing": timing(r.timing.as_ref()),
        "truncated": r.truncated,
        "gallery_size": r.gallery_size,
        "results_cut": r.results_cut,
    })
}

/// The answer of both encode endpoints.
pub fn encode_response(r: &proto::EncodeResponse) -> Value {
    let embeddings: Vec<Value> = r
        .embeddings
        .iter()
        .map(|e| json!({ "values": e.values, "truncated": e.truncated }))
        .collect();
    json!({ "embeddings": embeddings, "dim": r.dim, "timing": timing(r.timing.as_ref()) })
}

/// `GET /v1/info`'s answer.
pub fn info_response(r: &proto::InfoResponse) -> Value {
    let l = r.limits.unwrap_or_default();
    json!({
        "model_name": r.model_name,
        "model_config_json": r.model_config_json,
        "dim": r.dim,
        "gallery_size": r.gallery_size,
        "index_fingerprint": r.index_fingerprint,
        "version": r.version,
        "limits": {
            "max_top_k": l.max_top_k,
            "max_batch": l.max_batch,
            "max_queue": l.max_queue,
            "max_text_bytes": l.max_text_bytes,
            "max_image_bytes": l.max_image_bytes,
            "max_add_batch": l.max_add_batch,
            "default_top_k": l.default_top_k,
            "max_ef": l.max_ef,
            "max_response_bytes": l.max_response_bytes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_bodies_map_onto_the_protobuf_request() {
        let body = br#"{"image": "aGVsbG8=", "top_k": 3, "group_by": "image",
            "filter": {"camera_ids": ["c1"], "captured_from": "2024-05-01T08:00:00Z"}}"#;
        let req = parse::<SearchRequest>(body).unwrap().into_proto().unwrap();
        assert_eq!(req.image, b"hello");
        assert_eq!((req.top_k, req.group_by), (3, proto::GroupBy::Image as i32));
        let f = req.filter.unwrap();
        assert_eq!(f.camera_ids, ["c1"]);
        assert_eq!(f.captured_from.unwrap().seconds, 1_714_550_400);
        let proto_names = br#"{"text": "a man", "group_by": "GROUP_BY_IMAGE"}"#;
        let req = parse::<SearchRequest>(proto_names)
            .unwrap()
            .into_proto()
            .unwrap();
        assert_eq!(req.group_by, proto::GroupBy::Image as i32);
    }

    #[test]
    fn timestamps_are_written_as_rfc3339() {
        let t = prost_types::Timestamp {
            seconds: 1_714_550_400,
            nanos: 0,
        };
        assert_eq!(time(Some(&t)), "2024-05-01T08:00:00Z");
        assert_eq!(time(None), Value::Null);
    }
}
