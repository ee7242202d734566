//! Gallery sources for `ivt index build`: a manifest (CSV or JSON Lines), a folder with one
//! sub-folder per person, a folder of Market-1501-style file names, or a text-person dataset's
//! annotation file (CUHK-PEDES, ICFG-PEDES, RSTPReid) restricted to one split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::IngestError;
use crate::data::{read_dataset, Split};
use crate::index::ImageRecord;

/// Image file extensions picked up from folders.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp"];

/// One image to index: the file to encode and the record to store with its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryItem {
    /// The image file.
    pub file: PathBuf,
    /// Its metadata (`path` holds the file as given).
    pub record: ImageRecord,
}

/// The kinds of gallery source.
#[derive(Debug, Clone, PartialEq)]
pub enum GallerySource {
    /// CSV with a header (`path`, `person_id`, optional `camera_id`, `captured_at`, `image_id`,
    /// other columns become attributes); paths relative to the manifest's folder.
    CsvManifest(PathBuf),
    /// JSON Lines with the same fields as the CSV manifest.
    JsonlManifest(PathBuf),
    /// `<root>/<person_id>/<image>`.
    PersonFolders(PathBuf),
    /// `<root>/0001_c1s1_000151_01.jpg`: person 0001, camera 1.
    Market1501(PathBuf),
    /// CUHK-PEDES / ICFG-PEDES / RSTPReid annotation JSON, images under `images_root`.
    Dataset {
        /// The annotation file.
        annotation: PathBuf,
        /// Folder the annotation's image paths are relative to.
        images_root: PathBuf,
        /// The split to index.
        split: Split,
    },
}

impl GallerySource {
    /// Detects the kind of `path`: by extension for files, by contents for folders.
    /// `images_root` defaults to `imgs/` beside a dataset annotation (or its folder).
    pub fn detect(
        path: &Path,
        split: Option<Split>,
        images_root: Option<&Path>,
    ) -> Result<Self, IngestError> {
        // Absolute paths in the records stay valid wherever the index is used from.
        let path = &std::fs::canonicalize(path).map_err(io_err(path))?;
        if path.is_dir() {
            return detect_folder(path);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(GallerySource::CsvManifest(path.to_path_buf())),
            Some("jsonl" | "ndjson") => Ok(GallerySource::JsonlManifest(path.to_path_buf())),
            Some("json") => {
                let split = split.ok_or_else(|| IngestError::SplitRequired(path.to_path_buf()))?;
                let images_root = match images_root {
                    Some(root) => root.to_path_buf(),
                    None => default_images_root(path),
                };
                Ok(GallerySource::Dataset {
                    annotation: path.to_path_buf(),
                    images_root,
                    split,
                })
            }
            _ => Err(IngestError::UnknownSource {
                path: path.to_path_buf(),
                reason: "expected a .csv/.jsonl manifest, a dataset .json or a folder".into(),
            }),
        }
    }

    /// Reads every image of the source, in a stable order.
    pub fn read(&self) -> Result<Vec<GalleryItem>, IngestError> {
        let items = match self {
            GallerySource::CsvManifest(p) => read_csv_manifest(p)?,
            GallerySource::JsonlManifest(p) => read_jsonl_manifest(p)?,
            GallerySource::PersonFolders(p) => read_person_folders(p)?,
            GallerySource::Market1501(p) => read_market(p)?,
            GallerySource::Dataset {
                annotation,
                images_root,
                split,
            } => read_dataset_split(annotation, images_root, *split)?,
        };
        if items.is_empty() {
            return Err(IngestError::Empty(self.path().to_path_buf()));
        }
        Ok(items)
    }

    /// The file or folder the source was read from.
    pub fn path(&self) -> &Path {
        match self {
            GallerySource::CsvManifest(p)
            | GallerySource::JsonlManifest(p)
            | GallerySource::PersonFolders(p)
            | GallerySource::Market1501(p) => p,
            GallerySource::Dataset { annotation, .. } => annotation,
        }
    }

    /// A short name of the kind, for logs and `ivt index info`.
    pub fn kind(&self) -> &'static str {
        match self {
            GallerySource::CsvManifest(_) => "csv-manifest",
            GallerySource::JsonlManifest(_) => "jsonl-manifest",
            GallerySource::PersonFolders(_) => "person-folders",
            GallerySource::Market1501(_) => "market1501",
            GallerySource::Dataset { .. } => "dataset",
        }
    }
}

fn default_images_root(annotation: &Path) -> PathBuf {
    let dir = annotation.parent().unwrap_or(Path::new("."));
    let imgs = dir.join("imgs");
    if imgs.is_dir() {
        imgs
    } else {
        dir.to_path_buf()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Sorted entries of a folder.
fn list(dir: &Path) -> Result<Vec<PathBuf>, IngestError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        out.push(entry.map_err(io_err(dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// Sub-folders mean person folders; image files at the top mean Market-1501 names.
fn detect_folder(dir: &Path) -> Result<GallerySource, IngestError> {
    let entries = list(dir)?;
    let has_subdirs = entries.iter().any(|p| p.is_dir());
    let images: Vec<&PathBuf> = entries.iter().filter(|p| is_image(p)).collect();
    match (has_subdirs, images.is_empty()) {
        (true, true) => Ok(GallerySource::PersonFolders(dir.to_path_buf())),
        (false, false) => Ok(GallerySource::Market1501(dir.to_path_buf())),
        (true, false) => Err(IngestError::UnknownSource {
            path: dir.to_path_buf(),
            reason: "it holds both image files and sub-folders (use one layout, or a manifest)"
                .into(),
        }),
        (false, true) => Err(IngestError::Empty(dir.to_path_buf())),
    }
}

/// Relative path with `/` separators: a stable, portable default image id.
fn relative_id(file: &Path, root: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn item_from_file(file: PathBuf, root: &Path, person_id: String) -> GalleryItem {
    let mut record = ImageRecord::new(relative_id(&file, root), person_id);
    record.path = Some(file.to_string_lossy().into_owned());
    GalleryItem { file, record }
}

fn read_person_folders(root: &Path) -> Result<Vec<GalleryItem>, IngestError> {
    let mut items = Vec::new();
    for person_dir in list(root)?.into_iter().filter(|p| p.is_dir()) {
        let person = relative_id(&person_dir, root);
        for file in list(&person_dir)?.into_iter().filter(|p| is_image(p)) {
            items.push(item_from_file(file, root, person.clone()));
        }
    }
    Ok(items)
}

/// Parses `0001_c1s1_000151_01.jpg` into (person, camera, sequence, frame).
pub fn parse_market_name(stem: &str) -> Option<(String, String, String, String)> {
    let mut parts = stem.split('_');
    let person = parts.next()?;
    let cam_seq = parts.next()?.strip_prefix('c')?;
    let frame = parts.next()?;
    let (camera, sequence) = cam_seq.split_once('s')?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let person_ok = numeric(person.trim_start_matches('-'));
    (person_ok && numeric(camera) && numeric(sequence) && numeric(frame)).then(|| {
        (
            person.to_string(),
            camera.to_string(),
            sequence.to_string(),
            frame.to_string(),
        )
    })
}

fn read_market(root: &Path) -> Result<Vec<GalleryItem>, IngestError> {
    let mut items = Vec::new();
    for file in list(root)?.into_iter().filter(|p| is_image(p)) {
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let (person, camera, sequence, frame) =
            parse_market_name(stem).ok_or_else(|| IngestError::Entry {
                path: root.to_path_buf(),
                location: relative_id(&file, root),
                message: "not a Market-1501 name like 0001_c1s1_000151_01.jpg".into(),
            })?;
        let mut item = item_from_file(file, root, person);
        item.record.camera_id = Some(camera);
        item.record.attributes.insert("sequence".into(), sequence);
        item.record.attributes.insert("frame".into(), frame);
        items.push(item);
    }
    Ok(items)
}

fn read_dataset_split(
    annotation: &Path,
    images_root: &Path,
    split: Split,
) -> Result<Vec<GalleryItem>, IngestError> {
    let images = read_dataset(annotation)?;
    Ok(images
        .into_iter()
        .filter(|image| image.split == split)
        .map(|image| {
            let mut item =
                item_from_file(images_root.join(&image.path), images_root, image.person_id);
            item.record
                .attributes
                .insert("split".into(), split.to_string());
            item
        })
        .collect())
}

/// Builds an item from manifest fields (already split into known and free fields).
fn manifest_item(base: &Path, mut fields: BTreeMap<String, String>) -> Result<GalleryItem, String> {
    let mut take = |name: &str| fields.remove(name).filter(|v| !v.trim().is_empty());
    let path = take("path").ok_or("missing `path`")?;
    let person_id = take("person_id").ok_or("missing `person_id`")?;
    let camera_id = take("camera_id");
    let captured_at = take("captured_at")
        .map(|t| {
            DateTime::parse_from_rfc3339(t.trim())
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| format!("captured_at `{t}` is not RFC 3339: {e}"))
        })
        .transpose()?;
    let image_id = take("image_id").unwrap_or_else(|| path.clone());
    let file = base.join(&path);
    let record = ImageRecord {
        image_id,
        person_id: person_id.trim().to_string(),
        camera_id,
        captured_at,
        path: Some(file.to_string_lossy().into_owned()),
        attributes: fields.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
    };
    Ok(GalleryItem { file, record })
}

fn manifest_base(manifest: &Path) -> &Path {
    manifest.parent().unwrap_or(Path::new("."))
}

fn read_csv_manifest(manifest: &Path) -> Result<Vec<GalleryItem>, IngestError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_path(manifest)
        .map_err(|e| entry_error(manifest, "header".into(), e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| entry_error(manifest, "line 1".into(), e.to_string()))?
        .clone();
    let mut items = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = format!("line {}", i + 2);
        let row = row.map_err(|e| entry_error(manifest, line.clone(), e.to_string()))?;
        let fields = headers
            .iter()
            .zip(row.iter())
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect();
        let item = manifest_item(manifest_base(manifest), fields)
            .map_err(|m| entry_error(manifest, line, m))?;
        items.push(item);
    }
    Ok(items)
}

fn read_jsonl_manifest(manifest: &Path) -> Result<Vec<GalleryItem>, IngestError> {
    let text = std::fs::read_to_string(manifest).map_err(io_err(manifest))?;
    let mut items = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line = format!("line {}", i + 1);
        let fields = json_fields(raw).map_err(|m| entry_error(manifest, line.clone(), m))?;
        let item = manifest_item(manifest_base(manifest), fields)
            .map_err(|m| entry_error(manifest, line, m))?;
        items.push(item);
    }
    Ok(items)
}

/// A JSON object's fields as strings (numbers and booleans written out; nulls dropped).
fn json_fields(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let object = value.as_object().ok_or("expected a JSON object")?;
    let mut fields = BTreeMap::new();
    for (key, v) in object {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            other => {
                return Err(format!(
                    "field `{key}` must be a string or number, not {other}"
                ))
            }
        };
        fields.insert(key.clone(), text);
    }
    Ok(fields)
}

fn entry_error(path: &Path, location: String, message: String) -> IngestError {
    IngestError::Entry {
        path: path.to_path_buf(),
        location,
        message,
    }
}
