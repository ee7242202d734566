//! Training augmentation and the worker-thread loader: flips and padding do what the authors'
//! transform does, erasing stays within its bounds, and batches depend only on the seed (not on
//! the number of workers).

use std::path::PathBuf;
use std::sync::Arc;

use ivt::data::{DatasetImage, Split};
use ivt::model::IvtConfig;
use ivt::text::PosTagger;
use ivt::train::{augment, training_samples, AugmentOptions, EpochLoader, LoaderConfig};
use rand::SeedableRng;

fn cfg() -> IvtConfig {
    IvtConfig {
        image_size: [32, 16],
        ..IvtConfig::ivt_base()
    }
}

/// Column x has value 10 x in every channel; already at the model size, so resizing is exact.
fn ramp() -> image::RgbImage {
    image::RgbImage::from_fn(16, 32, |x, _| image::Rgb([(x * 10) as u8; 3]))
}

fn normalised(v: u8) -> f32 {
    (f32::from(v) / 255.0 - 0.5) / 0.5
}

#[test]
fn flip_and_pad_shift_like_the_authors_transform() {
    let none = AugmentOptions {
        pad: 0,
        flip: 1.0,
        erase: 0.0,
        ..AugmentOptions::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let px = augment(&ramp(), &cfg(), &none, &mut rng).unwrap();
    for x in 0..16 {
        assert_eq!(
            px.data[x],
            normalised(((15 - x) * 10) as u8),
            "column {x} not mirrored"
        );
    }
    // With padding, every row is the ramp shifted by the same offset, zeros (black) shifted in.
    let pad = AugmentOptions {
        pad: 4,
        flip: 0.0,
        erase: 0.0,
        ..AugmentOptions::default()
    };
    for seed in 0..20 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let px = augment(&ramp(), &cfg(), &pad, &mut rng).unwrap();
        let row: Vec<f32> = px.data[16 * 16..16 * 17].to_vec();
        let black = normalised(0);
        let shift = (-4i32..=4).find(|dx| {
            (0..16i32).all(|x| {
                let sx = x + dx;
                let want = if (0..16).contains(&sx) {
                    normalised((sx * 10) as u8)
                } else {
                    black
                };
                row[x as usize] == want
            })
        });
        assert!(
            shift.is_some(),
            "seed {seed}: row is not a shifted ramp: {row:?}"
        );
    }
}

#[test]
fn erasing_covers_between_2_and_33_percent() {
    let erase = AugmentOptions {
        pad: 0,
        flip: 0.0,
        erase: 1.0,
        ..AugmentOptions::default()
    };
    let clean = AugmentOptions {
        erase: 0.0,
        ..erase
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let base = augment(&ramp(), &cfg(), &clean, &mut rng).unwrap();
    for seed in 0..50 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let px = augment(&ramp(), &cfg(), &erase, &mut rng).unwrap();
        let changed = (0..32 * 16)
            .filter(|&i| (0..3).any(|c| px.data[c * 512 + i] != base.data[c * 512 + i]))
            .count() as f64
            / 512.0;
        assert!(changed <= 0.36, "seed {seed}: {changed} erased");
    }
}

#[test]
fn batches_do_not_depend_on_the_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for i in 0..6u8 {
        let path = PathBuf::from(format!("{i}.png"));
        image::RgbImage::from_pixel(10, 20, image::Rgb([i * 40, 100, 200 - i * 30]))
            .save(dir.path().join(&path))
            .unwrap();
        images.push(DatasetImage {
            path,
            person_id: (i / 2).to_string(),
            captions: vec![format!("A man in a red coat with black shoes, number {i}.")],
            split: Split::Train,
        });
    }
    let samples = Arc::new(training_samples(&images, PosTagger::builtin()));
    let files = Arc::new(
        images
            .iter()
            .map(|i| dir.path().join(&i.path))
            .collect::<Vec<_>>(),
    );
    let run = |workers: usize| {
        let cfg = LoaderConfig {
            images: files.clone(),
            samples: samples.clone(),
            model: cfg(),
            augment: AugmentOptions::default(),
            batch_size: 2,
            workers,
            seed: 9,
            mla: true,
        };
        EpochLoader::start(&cfg, 3)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let (one, three) = (run(1), run(3));
    assert_eq!(one.len(), 3);
    for (a, b) in one.iter().zip(&three) {
        assert_eq!(a.texts, b.texts);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.labels.len(), 6);
        assert!(a
            .pixels
            .iter()
            .zip(&b.pixels)
            .all(|(x, y)| x.data == y.data));
        // Level order: sentences first, lowercased.
        assert!(a.texts[0].starts_with("a man in a red coat"));
    }
}
