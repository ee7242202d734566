//! The metadata stored with every gallery image.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
