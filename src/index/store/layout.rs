//! The directory layout: `<index>/CURRENT` names the live generation directory (`g-000001`, …).
//! A build or compaction writes a new `g-NNNNNN.building` directory, renames it when complete
//! and then switches `CURRENT` atomically, so readers and crashes always see a whole index.

use std::path::{Path, PathBuf};

use super::fsio;
use crate::index::IndexError;

/// File naming the live generation.
const CURRENT_FILE: &str = "CURRENT";
/// Suffix of a generation still being built.
const BUILDING_SUFFIX: &str = ".building";

/// The live generation directory of the index at `dir`.
pub(crate) fn current(dir: &Path) -> Result<PathBuf, IndexError> {
    let path = dir.join(CURRENT_FILE);
    let name = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::NoIndex(dir.to_path_buf()))
        }
        r => r.map_err(IndexError::io(&path))?,
    };
    let name = name.trim();
    if parse_generation(name).is_none() {
        return Err(IndexError::corrupt(
            path,
            format!("bad generation name `{name}`"),
        ));
    }
    Ok(dir.join(name))
}

/// Whether `dir` holds an index.
pub(crate) fn exists(dir: &Path) -> bool {
    dir.join(CURRENT_FILE).is_file()
}

fn parse_generation(name: &str) -> Option<u64> {
    name.strip_prefix("g-")?.parse().ok()
}

fn generation_name(n: u64) -> String {
    format!("g-{n:06}")
}

/// Generation numbers present in `dir` (finished or building).
fn generations(dir: &Path) -> Result<Vec<u64>, IndexError> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.map_err(IndexError::io(dir))?,
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry.map_err(IndexError::io(dir))?.file_name();
        let name = name.to_string_lossy();
        let base = name.strip_suffix(BUILDING_SUFFIX).unwrap_or(&name);
        found.extend(parse_generation(base));
    }
    Ok(found)
}

/// The unfinished generation directory in `dir`, if a build was interrupted.
pub(crate) fn pending_build(dir: &Path) -> Result<Option<PathBuf>, IndexError> {
    let mut building: Vec<u64> = Vec::new();
    for n in generations(dir)? {
        let p = dir.join(format!("{}{BUILDING_SUFFIX}", generation_name(n)));
        if p.is_dir() {
            building.push(n);
        }
    }
    Ok(building
        .into_iter()
        .max()
        .map(|n| dir.join(format!("{}{BUILDING_SUFFIX}", generation_name(n)))))
}

/// Creates a fresh `g-NNNNNN.building` directory numbered after every existing generation.
pub(crate) fn new_building(dir: &Path) -> Result<PathBuf, IndexError> {
    std::fs::create_dir_all(dir).map_err(IndexError::io(dir))?;
    let next = generations(dir)?.into_iter().max().unwrap_or(0) + 1;
    let path = dir.join(format!("{}{BUILDING_SUFFIX}", generation_name(next)));
    std::fs::create_dir(&path).map_err(IndexError::io(&path))?;
    fsio::sync_dir(dir)?;
    Ok(path)
}

/// Renames a finished building directory into place, points `CURRENT` at it and deletes
/// older generations. Returns the published directory.
pub(crate) fn publish(dir: &Path, building: &Path) -> Result<PathBuf, IndexError> {
    let name = building
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(BUILDING_SUFFIX))
        .ok_or_else(|| IndexError::corrupt(building, "not a building generation"))?
        .to_string();
    let published = dir.join(&name);
    fsio::sync_dir(building)?;
    std::fs::rename(building, &published).map_err(IndexError::io(&published))?;
    fsio::sync_dir(dir)?;
    fsio::write_atomic(&dir.join(CURRENT_FILE), format!("{name}\n").as_bytes())?;
    remove_older(dir, parse_generation(&name).unwrap_or(0));
    Ok(published)
}

/// Deletes finished generations older than `keep`. Failures only cost disk space, so they are
/// logged rather than returned; readers that still map old files keep them alive on Unix.
fn remove_older(dir: &Path, keep: u64) {
    let Ok(gens) = generations(dir) else { return };
    for n in gens.into_iter().filter(|&n| n < keep) {
        let p = dir.join(generation_name(n));
        if p.is_dir() {
            if let Err(e) = std::fs::remove_dir_all(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove old index generation");
            }
        }
    }
}
