//! The synthetic renderer and caption writer are pinned byte for byte: a fixed set of datasets
//! (seeds, sizes) is planned and rendered, and SHA-256 digests of the identities, the plan
//! (files, cameras, views, times, captions) and the raw pixels must equal the committed ones in
//! `tests/fixtures/synth/render.sha256`. The shipped demo gallery and model card were made from
//! these images, so a refactor of `data::synth` must not change a single pixel or word.
//!
//! Pixels are hashed before JPEG encoding (the encoder may choose SIMD paths by CPU); the
//! renderer is integer and IEEE f32 arithmetic in a fixed order, except the umbrella outline's
//! `sin`/`cos`, whose results are rounded to whole pixels.
//!
//! When a change is meant to alter the output, the failure message prints the new fixture.

mod common;

use std::fmt::Write as _;

use ivt::data::synth::{SynthDataset, SynthOptions};
use sha2::{Digest, Sha256};

/// One pinned dataset.
struct Case {
    name: &'static str,
    identities: usize,
    images_per_identity: usize,
    seed: u64,
    /// Height, width.
    size: (u32, u32),
}

const CASES: [Case; 4] = [
    Case {
        name: "seed0",
        identities: 40,
        images_per_identity: 3,
        seed: 0,
        size: (160, 64),
    },
    Case {
        name: "seed7",
        identities: 40,
        images_per_identity: 3,
        seed: 7,
        size: (160, 64),
    },
    Case {
        name: "seed42-large",
        identities: 24,
        images_per_identity: 4,
        seed: 42,
        size: (256, 96),
    },
    Case {
        name: "seed1-small",
        identities: 12,
        images_per_identity: 2,
        seed: 1,
        size: (32, 16),
    },
];

fn hex(digest: impl AsRef<[u8]>) -> String {
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `name people|plan|pixels <sha256>` lines for one case.
fn digests(case: &Case) -> String {
    let name = case.name;
    let mut options = SynthOptions::new(case.identities, case.images_per_identity, case.seed);
    options.size = case.size;
    let dataset = SynthDataset::plan(&options).expect("plan");
    let people = serde_json::to_vec(&dataset.people).expect("people as JSON");
    let mut plan = Sha256::new();
    let mut pixels = Sha256::new();
    for (i, im) in dataset.images.iter().enumerate() {
        plan.update(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            im.file,
            im.person_id,
            im.camera,
            im.view.name(),
            im.captured_at.to_rfc3339(),
            im.captions.join("\t"),
        ));
        let img = dataset.render(i).expect("render");
        pixels.update(img.width().to_le_bytes());
        pixels.update(img.height().to_le_bytes());
        pixels.update(img.as_raw());
    }
    format!(
        "{name} people {}\n{name} plan {}\n{name} pixels {}\n",
        hex(Sha256::digest(&people)),
        hex(plan.finalize()),
        hex(pixels.finalize()),
    )
}

#[test]
fn synthetic_images_and_captions_are_byte_identical_to_the_fixture() {
    let actual: String = CASES.iter().map(digests).collect();
    let path = common::fixture("synth/render.sha256");
    let expected = std::fs::read_to_string(&path).expect("fixture");
    assert!(
        actual == expected,
        "synthetic output changed; if intended, write this to {}:\n{actual}",
        path.display()
    );
}
