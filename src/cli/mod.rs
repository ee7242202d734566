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

use crate::service::telemetry::Telemetry;

/// Text-based person retrieval with IVT.
#[derive(Debug, Parser)]
#[command(name = "ivt", version, about, long_about = None)]
pub struct Cli {
    /// Log as JSON lines (for log collectors) instead of human-readable text.
    #[arg(long, global = true, env = "IVT_JSON_LOGS")]
    pub json_logs: bool,
    /// Export tracing spans (request, tokenize, queue, encode, search, add, remove) to this
    /// OpenTelemetry collector over OTLP/gRPC, e.g. `http://otel-collector:4317`. Off when unset.
    #[arg(long, global = true, env = "IVT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the exported spans carry.
    #[arg(
        long,
        global = true,
        env = "IVT_OTLP_SERVICE_NAME",
        default_value = "ivt"
    )]
    pub otlp_service_name: String,
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

/// Logs go to stderr so that stdout stays machine-readable (`ivt ... | jq`); spans also go to
/// the OTLP collector when `--otlp-endpoint` is set. Returns the exporter, to be shut down (which
/// sends the last spans) before the process exits.
pub fn init_logging(cli: &Cli) -> anyhow::Result<Option<Telemetry>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, Registry};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hnsw_rs=warn"));
    let telemetry = match &cli.otlp_endpoint {
        Some(endpoint) => Some(Telemetry::otlp(endpoint, &cli.otlp_service_name)?),
        None => None,
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
        filter.boxed(),
        if cli.json_logs {
            fmt.json().boxed()
        } else {
            fmt.boxed()
        },
    ];
    if let Some(t) = &telemetry {
        layers.push(t.layer().boxed());
    }
    tracing_subscriber::registry().with(layers).init();
    if let Some(endpoint) = &cli.otlp_endpoint {
        tracing::info!(%endpoint, service_name = %cli.otlp_service_name, "exporting spans over OTLP");
    }
    Ok(telemetry)
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
