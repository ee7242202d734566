//! `ivt synth`: generate a synthetic text-person dataset in CUHK-PEDES format.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::synth::{SynthDataset, SynthOptions};
use crate::data::Split;

/// Arguments of `ivt synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Output folder: `imgs/`, `reid_raw.json` and one `<split>.jsonl` gallery manifest per split.
    #[arg(long, required_unless_present = "show_captions")]
    pub out: Option<PathBuf>,
    /// Identities in all splits together.
    #[arg(long, default_value_t = 1000)]
    pub identities: usize,
    /// Images of each identity (viewpoints, cameras and poses vary).
    #[arg(long, default_value_t = 4)]
    pub images_per_identity: usize,
    /// Image size, HEIGHTxWIDTH.
    #[arg(long, default_value = "160x64", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Seed: the same seed and options give the same dataset, byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Identities in the validation split (default: 5%).
    #[arg(long)]
    pub val_identities: Option<usize>,
    /// Identities in the test split (default: 25%).
    #[arg(long)]
    pub test_identities: Option<usize>,
    /// Splits to write (the others are planned but not rendered).
    #[arg(long, value_delimiter = ',', default_value = "train,val,test")]
    pub splits: Vec<Split>,
    /// Print a caption of this many test-split people (JSON lines: person_id, image, caption).
    /// With the default options these are captions of the demo gallery `ivt serve` serves with
    /// no arguments. Without --out nothing is written.
    #[arg(long)]
    pub show_captions: Option<usize>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}`: expected HEIGHTxWIDTH, e.g. 160x64"))?;
    let h = h
        .trim()
        .parse()
        .map_err(|_| format!("`{h}` is not a height in pixels"))?;
    let w = w
        .trim()
        .parse()
        .map_err(|_| format!("`{w}` is not a width in pixels"))?;
    Ok((h, w))
}

impl SynthArgs {
    /// The generator options these flags describe.
    pub fn options(&self) -> SynthOptions {
        let mut options = SynthOptions::new(self.identities, self.images_per_identity, self.seed);
        options.size = self.size;
        if let Some(v) = self.val_identities {
            options.val_identities = v;
        }
        if let Some(t) = self.test_identities {
            options.test_identities = t;
        }
        options
    }
}

/// Runs `ivt synth`: a JSON summary (or captions) on stdout, progress on stderr.
pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let dataset = SynthDataset::plan(&args.options())?;
    let mut stdout = std::io::stdout().lock();
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let progress = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} eta {eta}")
                .context("progress template")?,
        );
        let start = std::time::Instant::now();
        let summary = dataset.write(out, &args.splits, &progress)?;
        progress.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let json = serde_json::json!({
            "out": summary.out,
            "images": summary.images,
            "identities": summary.identities,
            "seconds": seconds,
            "images_per_second": summary.images as f64 / seconds.max(1e-9),
            "options": dataset.options,
        });
        writeln!(stdout, "{json}")?;
    }
    if let Some(n) = args.show_captions {
        // One caption per person: different people to search for.
        let first_shots = dataset
            .in_splits(&[Split::Test])
            .filter(|(_, im)| im.shot == 0);
        for (_, im) in first_shots.take(n) {
            let line = serde_json::json!({
                "person_id": im.person_id.to_string(),
                "image": im.file,
                "caption": im.captions.first(),
            });
            writeln!(stdout, "{line}")?;
        }
    }
    Ok(())
}
