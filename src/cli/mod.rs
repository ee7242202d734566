//! The `ivt` command line. Each subcommand lives in its own file; output meant for programs goes
//! to stdout as JSON, logs and progress to stderr.

pub mod bench;
pub mod bench_gallery;
pub mod bench_index;
pub mod bench_serve;
pub mod bench_train;
pub mod common;
pub mod convert;
pub mod encode;
pub mod eval;
pub mod index;
pub mod init;
pub mod search;
pub mod serve;
pub mod synth;
pub mod train;

use clap::{Parser, Subcommand};

/// Text-based person retrieval with IVT.
#[derive(Debug, Parser)]
#[command(name = "ivt", version, about, long_about = None)]
pub struct Cli {
    /// Log as JSON lines (for log collectors) instead of human-readable text.
    #[arg(long, global = true, env = "IVT_JSON_LOGS")]
    pub json_logs: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encode texts and images into L2-normalised embeddings (JSON lines on stdout).
    Encode(encode::EncodeArgs),
    /// Convert a checkpoint (.pth or safetensors) into a clean model directory.
    Convert(convert::ConvertArgs),
    /// Build, inspect and change gallery indexes.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Search a gallery index with a text description (JSON on stdout).
    Search(search::SearchArgs),
    /// Serve retrieval over gRPC (health, reflection, metrics, batching).
    Serve(serve::ServeArgs),
    /// Text-to-image retrieval metrics (R@K, mAP, mINP) of a model on a dataset split.
    Eval(eval::EvalArgs),
    /// Initialise an IVT model from an ImageNet ViT and a BERT checkpoint.
    Init(init::InitArgs),
    /// Train IVT (MLA + BMM + CMPM) on a text-person dataset.
    Train(train::TrainArgs),
    /// Generate a synthetic text-person dataset (CUHK-PEDES format) with captions.
    Synth(synth::SynthArgs),
    /// Measure speed.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Logs go to stderr so that stdout stays machine-readable (`ivt ... | jq`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hnsw_rs=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Encode(args) => encode::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Index(cmd) => index::run(cmd),
        Command::Search(args) => search::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Init(args) => init::run(args),
        Command::Train(args) => train::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
