//! `ivt synth`: a procedurally drawn text-person dataset in CUHK-PEDES format.
//!
//! Identities are combinations of the attributes captions talk about ([`Person`]); each identity
//! is drawn several times from different viewpoints, cameras, poses and lighting
//! ([`render::render`]), and every image gets two captions ([`captions::caption`]). Everything
//! follows from the seed: identity `i`, image `k` has its own random stream, so any subset of the
//! dataset (the test split alone, for the demo gallery) renders identically.

pub mod captions;
pub mod person;
pub mod render;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

pub use person::Person;
pub use render::View;

use super::datasets::Split;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SynthOptions {
    /// Identities in all splits together.
    pub identities: usize,
    /// Images of each identity.
    pub images_per_identity: usize,
    /// Image height and width in pixels.
    pub size: (u32, u32),
    /// Seed of everything.
    pub seed: u64,
    /// Identities in the validation split.
    pub val_identities: usize,
    /// Identities in the test split.
    pub test_identities: usize,
}

impl SynthOptions {
    /// `identities` split 70/5/25 into train/val/test (1,000 identities: 700/50/250, the demo
    /// model's dataset).
    pub fn new(identities: usize, images_per_identity: usize, seed: u64) -> Self {
        let test = identities / 4;
        let val = identities / 20;
        Self {
            identities,
            images_per_identity,
            size: (160, 64),
            seed,
            val_identities: val,
            test_identities: test,
        }
    }

    /// Checks the counts add up.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Options(m));
        if self.identities == 0 || self.images_per_identity == 0 {
            return bad("--identities and --images-per-identity must be at least 1".into());
        }
        if self.val_identities + self.test_identities > self.identities {
            return bad(format!(
                "{} validation + {} test identities exceed the {} identities",
                self.val_identities, self.test_identities, self.identities
            ));
        }
        let (h, w) = self.size;
        if !(32..=1024).contains(&h) || !(16..=1024).contains(&w) {
            return bad(format!(
                "--size {h}x{w}: height must be 32–1024 and width 16–1024"
            ));
        }
        Ok(())
    }
}

/// Errors generating a synthetic dataset.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Inconsistent options.
    #[error("{0}")]
    Options(String),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image could not be encoded.
    #[error("cannot encode {path}: {message}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What the encoder said.
        message: String,
    },
}

/// One planned image.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthImage {
    /// Index into [`SynthDataset::people`].
    pub person: usize,
    /// Person id as written to the annotation (1-based, like CUHK-PEDES).
    pub person_id: u32,
    /// Which image of the person this is.
    pub shot: usize,
    /// Split of the person.
    pub split: Split,
    /// Camera (1–6).
    pub camera: u8,
    /// Viewpoint.
    pub view: View,
    /// Capture time.
    pub captured_at: DateTime<Utc>,
    /// Path relative to the images root (`imgs/`).
    pub file: String,
    /// Two captions.
    pub captions: Vec<String>,
}

/// A planned dataset: identities, images and captions; pixels are rendered on demand.
#[derive(Debug, Clone)]
pub struct SynthDataset {
    /// The options it was planned from.
    pub options: SynthOptions,
    /// Identities, by index (`person_id - 1`).
    pub people: Vec<Person>,
    /// Images, identity by identity.
    pub images: Vec<SynthImage>,
}

/// Mixes seed, identity, shot and purpose into one stream seed (splitmix64).
fn stream(seed: u64, person: u64, shot: u64, purpose: u64) -> u64 {
    let mut z = seed
        ^ person.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ shot.wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ purpose.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SynthDataset {
    /// Plans the dataset: identities (all distinct), splits, and each image's camera, view,
    /// time and captions.
    pub fn plan(options: &SynthOptions) -> Result<Self, SynthError> {
        options.validate()?;
        let mut rng = StdRng::seed_from_u64(stream(options.seed, u64::MAX, 0, 0));
        let people = distinct_people(options.identities, &mut rng);
        let splits = assign_splits(options, &mut rng);
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).single();
        let start = start.unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut images = Vec::with_capacity(options.identities * options.images_per_identity);
        for (i, person) in people.iter().enumerate() {
            images.extend(plan_shots(options, i, person, splits[i], start));
        }
        Ok(Self {
            options: options.clone(),
            people,
            images,
        })
    }

    /// Renders image `i` of [`SynthDataset::images`].
    pub fn render(&self, i: usize) -> Option<image::RgbImage> {
        let image = self.images.get(i)?;
        let person = self.people.get(image.person)?;
        let mut rng = StdRng::seed_from_u64(stream(
            self.options.seed,
            image.person as u64,
            image.shot as u64,
            2,
        ));
        Some(render::render(
            person,
            image.view,
            image.camera,
            self.options.size,
            &mut rng,
        ))
    }

    /// The images of the given splits.
    pub fn in_splits<'a>(
        &'a self,
        splits: &'a [Split],
    ) -> impl Iterator<Item = (usize, &'a SynthImage)> + 'a {
        self.images
            .iter()
            .enumerate()
            .filter(move |(_, im)| splits.contains(&im.split))
    }

    /// Writes `imgs/<split>/…jpg`, `reid_raw.json` (CUHK-PEDES format) and one gallery manifest
    /// `<split>.jsonl` per split into `out`, rendering in parallel. Each file is written to a
    /// temporary name and renamed, so an interrupted run leaves no half-written files.
    pub fn write(
        &self,
        out: &Path,
        splits: &[Split],
        progress: &indicatif::ProgressBar,
    ) -> Result<SynthSummary, SynthError> {
        let chosen: Vec<(usize, &SynthImage)> = self.in_splits(splits).collect();
        for split in splits {
            let dir = out.join("imgs").join(split.to_string());
            std::fs::create_dir_all(&dir).map_err(|source| SynthError::Io { path: dir, source })?;
        }
        self.write_images(out, &chosen, progress)?;
        write_annotation(out, &chosen)?;
        write_manifests(out, splits, &chosen)?;
        Ok(SynthSummary {
            out: out.to_path_buf(),
            images: chosen.len(),
            identities: chosen
                .iter()
                .map(|(_, im)| im.person)
                .collect::<HashSet<_>>()
                .len(),
        })
    }

    /// Renders `chosen` in parallel into `out/imgs/…` as JPEG (quality 92).
    fn write_images(
        &self,
        out: &Path,
        chosen: &[(usize, &SynthImage)],
        progress: &indicatif::ProgressBar,
    ) -> Result<(), SynthError> {
        progress.set_length(chosen.len() as u64);
        chosen.par_iter().try_for_each(|&(i, im)| {
            let path = out.join("imgs").join(&im.file);
            let img = self
                .render(i)
                .ok_or_else(|| SynthError::Options(format!("no image {i}")))?;
            let mut bytes = Vec::with_capacity(8 << 10);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92)
                .encode_image(&img)
                .map_err(|e| SynthError::Encode {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            write_atomic(&path, &bytes)?;
            progress.inc(1);
            Ok::<_, SynthError>(())
        })
    }
}

/// `out/reid_raw.json`: the CUHK-PEDES annotation of `chosen`.
fn write_annotation(out: &Path, chosen: &[(usize, &SynthImage)]) -> Result<(), SynthError> {
    let annotation: Vec<serde_json::Value> = chosen
        .iter()
        .map(|(_, im)| {
            serde_json::json!({
                "split": im.split,
                "captions": im.captions,
                "file_path": im.file,
                "id": im.person_id,
            })
        })
        .collect();
    let json = serde_json::to_vec(&annotation).map_err(|e| SynthError::Options(e.to_string()))?;
    write_atomic(&out.join("reid_raw.json"), &json)
}

/// `out/<split>.jsonl`: one gallery manifest line per image of each split (first caption).
fn write_manifests(
    out: &Path,
    splits: &[Split],
    chosen: &[(usize, &SynthImage)],
) -> Result<(), SynthError> {
    for split in splits {
        let mut lines = Vec::new();
        for (_, im) in chosen.iter().filter(|(_, im)| im.split == *split) {
            let line = serde_json::json!({
                "path": format!("imgs/{}", im.file),
                "image_id": im.file,
                "person_id": im.person_id.to_string(),
                "camera_id": im.camera.to_string(),
                "captured_at": im.captured_at.to_rfc3339(),
                "view": im.view.name(),
                "caption": im.captions.first().cloned().unwrap_or_default(),
            });
            let _ = writeln!(lines, "{line}");
        }
        write_atomic(&out.join(format!("{split}.jsonl")), &lines)?;
    }
    Ok(())
}

/// `n` identities that differ in what captions can say, not only in skin tone.
fn distinct_people(n: usize, rng: &mut StdRng) -> Vec<Person> {
    let mut seen = HashSet::new();
    let mut people = Vec::with_capacity(n);
    while people.len() < n {
        let p = Person::random(rng);
        let key = Person {
            skin: 0,
            ..p.clone()
        };
        if seen.insert(key) {
            people.push(p);
        }
    }
    people
}

/// Each identity's split: a random `test_identities` go to test, the next `val_identities`
/// to validation, the rest to training.
fn assign_splits(options: &SynthOptions, rng: &mut StdRng) -> Vec<Split> {
    let mut order: Vec<usize> = (0..options.identities).collect();
    order.shuffle(rng);
    let mut splits = vec![Split::Train; options.identities];
    for (rank, &i) in order.iter().enumerate() {
        splits[i] = if rank < options.test_identities {
            Split::Test
        } else if rank < options.test_identities + options.val_identities {
            Split::Val
        } else {
            Split::Train
        };
    }
    splits
}

/// The images of identity `i`: views cycle through a shuffled front/back/side, cameras change
/// from shot to shot, and time moves on from the first sighting (within 30 days of `start`).
fn plan_shots(
    options: &SynthOptions,
    i: usize,
    person: &Person,
    split: Split,
    start: DateTime<Utc>,
) -> Vec<SynthImage> {
    let mut rng = StdRng::seed_from_u64(stream(options.seed, i as u64, 0, 1));
    let mut views = [View::Front, View::Back, View::Side(rng.random_bool(0.5))];
    views.shuffle(&mut rng);
    let first_seen = start + Duration::minutes(rng.random_range(0..60 * 24 * 30));
    let mut camera = rng.random_range(1..=6u8);
    let mut images = Vec::with_capacity(options.images_per_identity);
    for shot in 0..options.images_per_identity {
        let mut view = views[shot % views.len()];
        if let View::Side(_) = view {
            view = View::Side(rng.random_bool(0.5));
        }
        if shot > 0 {
            camera = (camera + rng.random_range(0..5u8)) % 6 + 1;
        }
        let captured_at = first_seen + Duration::seconds(shot as i64 * rng.random_range(20..400));
        let person_id = i as u32 + 1;
        let captions = (0..2)
            .map(|_| captions::caption(person, view, &mut rng))
            .collect();
        images.push(SynthImage {
            person: i,
            person_id,
            shot,
            split,
            camera,
            view,
            captured_at,
            file: format!("{split}/{person_id:05}_c{camera}_{shot:02}.jpg"),
            captions,
        });
    }
    images
}

/// What [`SynthDataset::write`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Images written.
    pub images: usize,
    /// Identities written.
    pub identities: usize,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    let io = |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_and_split_by_identity() {
        let opts = SynthOptions::new(50, 3, 7);
        let a = SynthDataset::plan(&opts).unwrap();
        let b = SynthDataset::plan(&opts).unwrap();
        assert_eq!(a.images, b.images);
        assert_eq!(a.render(5), b.render(5));
        assert_ne!(a.render(5), a.render(6));
        let test: HashSet<u32> = a
            .images
            .iter()
            .filter(|i| i.split == Split::Test)
            .map(|i| i.person_id)
            .collect();
        assert_eq!(test.len(), 12);
        for im in &a.images {
            assert_eq!(im.captions.len(), 2);
            assert_eq!(test.contains(&im.person_id), im.split == Split::Test);
        }
        let other = SynthDataset::plan(&SynthOptions::new(50, 3, 8)).unwrap();
        assert_ne!(a.images, other.images);
    }
}
