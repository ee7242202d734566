//! Image records (`records.jsonl`, one per slot) and tombstones (`tombstones.u32`), plus the
//! compact per-slot columns that filters test during graph traversal.

use std::collections::HashMap;
use std::path::Path;

use super::checksum::{check_sum, FileSum};
use super::fsio;
use crate::index::ImageRecord;
use crate::index::IndexError;
use crate::index::IndexManifest;

/// File holding one JSON record per slot, in slot order.
pub(crate) const RECORDS_FILE: &str = "records.jsonl";
/// File holding the removed slots as little-endian u32, sorted.
pub(crate) const TOMBSTONES_FILE: &str = "tombstones.u32";

/// Filterable fields of one slot, interned to integers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub(crate) person: u32,
    pub(crate) camera: Option<u32>,
    pub(crate) captured_ms: Option<i64>,
    pub(crate) removed: bool,
}

/// Strings interned to dense codes.
#[derive(Debug, Default)]
struct Interner {
    codes: HashMap<String, u32>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        let next = self.codes.len() as u32;
        *self.codes.entry(s.to_string()).or_insert(next)
    }
}

/// All records of an index with their filter columns and id lookups.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    records: Vec<ImageRecord>,
    rows: Vec<Row>,
    persons: Interner,
    cameras: Interner,
    /// Live image id → slot, for duplicate checks and removal.
    live_ids: HashMap<String, usize>,
    removed: usize,
}

impl Metadata {
    /// Reads the manifest's committed records and the tombstones from `dir`, checking both
    /// against the manifest's checksums (they are read whole anyway, so this costs little).
    pub(crate) fn read(dir: &Path, manifest: &IndexManifest) -> Result<Self, IndexError> {
        let slots = manifest.slots;
        let mut meta = Metadata::default();
        // Exact sizes: growing by doubling would leave up to half of each unused.
        meta.records.reserve_exact(slots);
        meta.rows.reserve_exact(slots);
        meta.live_ids.reserve(slots);
        for record in read_records(dir, manifest)? {
            meta.push(record);
        }
        for slot in read_tombstones(dir, manifest)? {
            meta.mark_removed(slot);
        }
        Ok(meta)
    }

    /// Appends a record as a new live slot.
    pub(crate) fn push(&mut self, record: ImageRecord) {
        let row = Row {
            person: self.persons.intern(&record.person_id),
            camera: record.camera_id.as_deref().map(|c| self.cameras.intern(c)),
            captured_ms: record.captured_at.map(|t| t.timestamp_millis()),
            removed: false,
        };
        self.live_ids
            .insert(record.image_id.clone(), self.records.len());
        self.records.push(record);
        self.rows.push(row);
    }

    /// Marks a slot removed; returns false if it already was.
    pub(crate) fn mark_removed(&mut self, slot: usize) -> bool {
        let Some(row) = self.rows.get_mut(slot) else {
            return false;
        };
        if row.removed {
            return false;
        }
        row.removed = true;
        self.removed += 1;
        self.live_ids.remove(&self.records[slot].image_id);
        true
    }

    /// Filter columns of a slot.
    pub(crate) fn row(&self, slot: usize) -> Option<&Row> {
        self.rows.get(slot)
    }

    /// The record of a slot.
    pub(crate) fn record(&self, slot: usize) -> &ImageRecord {
        &self.records[slot]
    }

    /// Number of slots (live and removed).
    pub(crate) fn slots(&self) -> usize {
        self.records.len()
    }

    /// Number of removed slots.
    pub(crate) fn removed(&self) -> usize {
        self.removed
    }

    /// Slot of a live image id.
    pub(crate) fn live_slot(&self, image_id: &str) -> Option<usize> {
        self.live_ids.get(image_id).copied()
    }

    /// Code of a person id, if any record has it.
    pub(crate) fn person_code(&self, person_id: &str) -> Option<u32> {
        self.persons.codes.get(person_id).copied()
    }

    /// Code of a camera id, if any record has it.
    pub(crate) fn camera_code(&self, camera_id: &str) -> Option<u32> {
        self.cameras.codes.get(camera_id).copied()
    }

    /// Live slots of the given person codes.
    pub(crate) fn live_slots_of_persons(&self, codes: &[u32]) -> Vec<usize> {
        (0..self.rows.len())
            .filter(|&s| !self.rows[s].removed && codes.contains(&self.rows[s].person))
            .collect()
    }

    /// Removed slots, sorted.
    pub(crate) fn tombstones(&self) -> Vec<u32> {
        (0..self.rows.len())
            .filter(|&s| self.rows[s].removed)
            .map(|s| s as u32)
            .collect()
    }

    /// Writes the tombstones atomically; returns their checksum.
    pub(crate) fn write_tombstones(&self, dir: &Path) -> Result<FileSum, IndexError> {
        let bytes: Vec<u8> = self
            .tombstones()
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        fsio::write_atomic(&dir.join(TOMBSTONES_FILE), &bytes)?;
        Ok(FileSum::of(&bytes))
    }
}

/// Serialises records as JSON lines.
pub(crate) fn encode_records(records: &[&ImageRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        serde_json::to_writer(&mut out, r).expect("records serialise");
        out.push(b'\n');
    }
    out
}

/// The recorded checksum of a file of `manifest`: a file it records nothing for (one not
/// written yet) must be empty, unless the index predates checksums.
fn recorded(manifest: &IndexManifest, name: &str) -> Option<FileSum> {
    manifest.files.as_ref()?;
    Some(manifest.sum(name).unwrap_or_default())
}

fn read_records(dir: &Path, manifest: &IndexManifest) -> Result<Vec<ImageRecord>, IndexError> {
    let (slots, bytes) = (manifest.slots, manifest.records_bytes);
    let path = dir.join(RECORDS_FILE);
    let data = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && slots == 0 => return Ok(Vec::new()),
        r => r.map_err(IndexError::io(&path))?,
    };
    if (data.len() as u64) < bytes {
        let msg = format!(
            "truncated: {} bytes, the manifest records {bytes}",
            data.len()
        );
        return Err(IndexError::corrupt(&path, msg));
    }
    let committed = &data[..bytes as usize];
    let mut records = Vec::with_capacity(slots);
    for (i, line) in committed.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let record: ImageRecord = serde_json::from_slice(line)
            .map_err(|e| IndexError::corrupt(&path, format!("line {}: {e}", i + 1)))?;
        records.push(record);
    }
    if records.len() != slots {
        let msg = format!("{} records, the manifest records {slots}", records.len());
        return Err(IndexError::corrupt(&path, msg));
    }
    // After parsing, so that a malformed line is reported with its number.
    check_sum(
        &path,
        recorded(manifest, RECORDS_FILE),
        FileSum::of(committed),
    )?;
    Ok(records)
}

fn read_tombstones(dir: &Path, manifest: &IndexManifest) -> Result<Vec<usize>, IndexError> {
    let slots = manifest.slots;
    let path = dir.join(TOMBSTONES_FILE);
    let data = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        r => r.map_err(IndexError::io(&path))?,
    };
    check_sum(
        &path,
        recorded(manifest, TOMBSTONES_FILE),
        FileSum::of(&data),
    )?;
    if data.len() % 4 != 0 {
        return Err(IndexError::corrupt(&path, "length is not a multiple of 4"));
    }
    let slots_removed: Vec<usize> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if let Some(bad) = slots_removed.iter().find(|&&s| s >= slots) {
        return Err(IndexError::corrupt(
            &path,
            format!("slot {bad} out of range"),
        ));
    }
    Ok(slots_removed)
}
