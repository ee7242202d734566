//! The metadata stored with every gallery image.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest image, person and camera id, in bytes: room for UUIDs, content hashes and
/// `camera/date/frame` style names.
pub const MAX_ID_BYTES: usize = 256;
/// Longest source path, in bytes: Linux's `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most attributes per image: room for a few tags per image (source, track, quality, ...).
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 64;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 256;

/// One gallery image: who it shows, where and when it was taken, and free attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Unique id of the image within the index (defaults to its path when built from files).
    pub image_id: String,
    /// Identity of the person shown; search results are grouped by it.
    pub person_id: String,
    /// Camera that took the image, if known (filterable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_id: Option<String>,
    /// Capture time, if known (filterable by time window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<DateTime<Utc>>,
    /// Source file the embedding was computed from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Free key/value attributes carried through to results.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl ImageRecord {
    /// A record with only the two required ids.
    pub fn new(image_id: impl Into<String>, person_id: impl Into<String>) -> Self {
        ImageRecord {
            image_id: image_id.into(),
            person_id: person_id.into(),
            camera_id: None,
            captured_at: None,
            path: None,
            attributes: BTreeMap::new(),
        }
    }
}

impl ImageRecord {
    /// Checks the size limits above, which bound every stored record (about 15 KiB at most) and
    /// so every search response: a record is returned with each of its hits. The message names
    /// the field and its limit.
    pub fn check_sizes(&self) -> Result<(), String> {
        let id = crate::index::validate::quote_id(&self.image_id);
        let too_long = |field: &str, len: usize, limit: usize| {
            (len > limit)
                .then(|| format!("image {id}: {field} is {len} bytes, the limit is {limit} bytes"))
        };
        let ids = [
            ("image_id", Some(&self.image_id)),
            ("person_id", Some(&self.person_id)),
            ("camera_id", self.camera_id.as_ref()),
        ];
        for (field, value) in ids {
            if let Some(e) = too_long(field, value.map_or(0, String::len), MAX_ID_BYTES) {
                return Err(e);
            }
        }
        let path = self.path.as_ref().map_or(0, String::len);
        if let Some(e) = too_long("path", path, MAX_PATH_BYTES) {
            return Err(e);
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "image {id}: {} attributes, the limit is {MAX_ATTRIBUTES}",
                self.attributes.len()
            ));
        }
        for (key, value) in &self.attributes {
            let shown = crate::index::validate::quote_id(key);
            let checks = [
                (
                    format!("attribute key {shown}"),
                    key.len(),
                    MAX_ATTRIBUTE_KEY_BYTES,
                ),
                (
                    format!("attribute {shown}"),
                    value.len(),
                    MAX_ATTRIBUTE_VALUE_BYTES,
                ),
            ];
            for (field, len, limit) in checks {
                if let Some(e) = too_long(&field, len, limit) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
