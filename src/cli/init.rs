//! `ivt init`: an IVT model directory initialised from an ImageNet ViT and a BERT checkpoint, as
//! the authors start training.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::model::weights;
use crate::train::{init_from_pretrained, save_checkpoint};

/// Arguments of `ivt init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// ImageNet ViT-B/16 checkpoint with timm names (`jx_vit_base_p16_224`), .pth or .safetensors.
    #[arg(long)]
    pub vit: PathBuf,
    /// BERT checkpoint (bert-base-uncased; BertForMaskedLM or BertModel names), .safetensors or .bin.
    #[arg(long)]
    pub bert: PathBuf,
    /// Target architecture (config JSON); `pos_embed` is resized to its patch grid.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Named target architecture instead of --config: ivt-base or ivt-base-s16.
    #[arg(long)]
    pub preset: Option<String>,
    /// Output model directory (model.safetensors + config.json), written atomically.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `ivt init`; prints a JSON summary on stdout.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let cfg = match (&args.config, &args.preset) {
        (Some(p), _) => weights::read_config_file(p)?,
        (None, Some(name)) => super::common::preset(name)?,
        (None, None) => anyhow::bail!("give the target architecture with --config or --preset"),
    };
    let tensors = init_from_pretrained(&args.vit, &args.bert, &cfg).with_context(|| {
        format!(
            "initialising from {} and {}",
            args.vit.display(),
            args.bert.display()
        )
    })?;
    save_checkpoint(&args.out, &cfg, &tensors, None)?;
    let (rows, cols) = cfg.patch_grid();
    let summary = serde_json::json!({
        "out": args.out,
        "tensors": tensors.len(),
        "patch_grid": [rows, cols],
        "fresh": ["type_embed"],
    });
    writeln!(std::io::stdout().lock(), "{summary}")?;
    Ok(())
}
