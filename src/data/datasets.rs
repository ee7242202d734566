//! Readers for the text-based person retrieval datasets: CUHK-PEDES (`reid_raw.json`),
//! ICFG-PEDES (`ICFG-PEDES.json`) and RSTPReid (`data_captions.json`).
//!
//! All three are one JSON list with one entry per image. CUHK-PEDES and ICFG-PEDES name the image
//! `file_path`, RSTPReid names it `img_path`; the format is detected from the entries, not from the
//! file name, so renamed annotation files still load.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// Errors reading a dataset annotation file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The annotation file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not JSON, or not a list of entries.
    #[error(
        "{path} is not a dataset annotation file (expected a JSON list of entries): {message}"
    )]
    NotAList {
        /// The annotation file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The first entry has neither `file_path` nor `img_path`.
    #[error("{path}: cannot tell the dataset format: entry 0 has neither `file_path` (CUHK-PEDES, ICFG-PEDES) nor `img_path` (RSTPReid)")]
    UnknownFormat {
        /// The annotation file.
        path: PathBuf,
    },
    /// One entry is malformed.
    #[error("{path}: entry {index} (0-based): {message}")]
    Entry {
        /// The annotation file.
        path: PathBuf,
        /// Position of the entry in the list.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file holds no images.
    #[error("{0} holds no entries")]
    Empty(PathBuf),
}

/// The dataset split an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training images.
    Train,
    /// Validation images (CUHK-PEDES and RSTPReid only).
    Val,
    /// Test images.
    Test,
}

impl FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "val" | "valid" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => Err(format!(
                "unknown split `{other}` (expected train, val or test)"
            )),
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        })
    }
}

/// Which annotation layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// CUHK-PEDES / ICFG-PEDES: `{split, captions, file_path, id, ...}`.
    Pedes,
    /// RSTPReid: `{id, img_path, captions, split}`.
    RstpReid,
}

/// One annotated image of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetImage {
    /// Image path relative to the dataset's images root (never absolute, never `..`).
    pub path: PathBuf,
    /// The person's identity as written in the file (numeric ids become their decimal string).
    pub person_id: String,
    /// The image's descriptions (blank captions are dropped; at least one remains).
    pub captions: Vec<String>,
    /// The split the image belongs to.
    pub split: Split,
}

/// Reads a CUHK-PEDES, ICFG-PEDES or RSTPReid annotation file, detecting the format.
pub fn read_dataset(annotation: &Path) -> Result<Vec<DatasetImage>, DataError> {
    let text = std::fs::read_to_string(annotation).map_err(|source| DataError::Io {
        path: annotation.to_path_buf(),
        source,
    })?;
    parse_dataset(&text, annotation)
}

/// Parses the text of an annotation file; `origin` names it in error messages.
pub fn parse_dataset(text: &str, origin: &Path) -> Result<Vec<DatasetImage>, DataError> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| DataError::NotAList {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
    let first = entries
        .first()
        .ok_or_else(|| DataError::Empty(origin.to_path_buf()))?;
    let format = detect_format(first).ok_or_else(|| DataError::UnknownFormat {
        path: origin.to_path_buf(),
    })?;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            parse_entry(value, format).map_err(|message| DataError::Entry {
                path: origin.to_path_buf(),
                index,
                message,
            })
        })
        .collect()
}

/// Detects the layout from the first entry's fields.
pub fn detect_format(first: &serde_json::Value) -> Option<DatasetFormat> {
    if first.get("img_path").is_some() {
        Some(DatasetFormat::RstpReid)
    } else if first.get("file_path").is_some() {
        Some(DatasetFormat::Pedes)
    } else {
        None
    }
}

fn parse_entry(value: serde_json::Value, format: DatasetFormat) -> Result<DatasetImage, String> {
    let entry = value
        .as_object()
        .ok_or_else(|| format!("expected an object, found {value}"))?;
    let field = |name: &str| {
        entry
            .get(name)
            .ok_or_else(|| format!("missing field `{name}`"))
    };
    let path_field = match format {
        DatasetFormat::Pedes => "file_path",
        DatasetFormat::RstpReid => "img_path",
    };
    let path = relative_image_path(string_field(field(path_field)?, path_field)?)?;
    let split = string_field(field("split")?, "split")?.parse::<Split>()?;
    let person_id = person_id(field("id")?)?;
    let captions = captions(field("captions")?)?;
    if captions.is_empty() {
        return Err(format!("image {} has no non-blank caption", path.display()));
    }
    Ok(DatasetImage {
        path,
        person_id,
        captions,
        split,
    })
}

fn string_field<'a>(value: &'a serde_json::Value, name: &str) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("field `{name}` must be a string, found {value}"))
}

/// The non-blank captions; blank ones occur in the published files and carry no information.
fn captions(value: &serde_json::Value) -> Result<Vec<String>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("field `captions` must be a list of strings, found {value}"))?;
    let mut captions = Vec::with_capacity(list.len());
    for (i, caption) in list.iter().enumerate() {
        let text = caption
            .as_str()
            .ok_or_else(|| format!("caption {i} must be a string, found {caption}"))?;
        if !text.trim().is_empty() {
            captions.push(text.to_string());
        }
    }
    Ok(captions)
}

/// Image paths must stay under the images root: a dataset file must not make us read elsewhere.
fn relative_image_path(raw: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(raw.replace('\\', "/"));
    if raw.trim().is_empty() {
        return Err("empty image path".to_string());
    }
    let escapes = path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(format!(
            "image path `{raw}` must be relative to the images root (no leading `/`, no `..`)"
        ));
    }
    Ok(path)
}

fn person_id(id: &serde_json::Value) -> Result<String, String> {
    match id {
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        serde_json::Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        other => Err(format!(
            "field `id` must be an integer or a non-empty string, found {other}"
        )),
    }
}

/// The images of one split, in file order.
pub fn filter_split(images: &[DatasetImage], split: Split) -> Vec<DatasetImage> {
    images
        .iter()
        .filter(|image| image.split == split)
        .cloned()
        .collect()
}

/// Contiguous person labels `0..count` (classification targets, CMPM labels).
#[derive(Debug, Clone, Default)]
pub struct PersonLabels {
    by_id: HashMap<String, usize>,
}

impl PersonLabels {
    /// Numbers the person ids of `images` in order of first appearance.
    pub fn new(images: &[DatasetImage]) -> Self {
        let mut by_id = HashMap::new();
        for image in images {
            let next = by_id.len();
            by_id.entry(image.person_id.clone()).or_insert(next);
        }
        Self { by_id }
    }

    /// The label of a person id, if it occurs in the images this was built from.
    pub fn label(&self, person_id: &str) -> Option<usize> {
        self.by_id.get(person_id).copied()
    }

    /// The number of distinct persons.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are no persons.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// The contiguous label (`0..persons`, in order of first appearance) of every image.
pub fn contiguous_labels(images: &[DatasetImage]) -> Vec<usize> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    images
        .iter()
        .map(|image| {
            let next = by_id.len();
            *by_id.entry(image.person_id.as_str()).or_insert(next)
        })
        .collect()
}
