//! `ivt bench`: throughput measurements (printed as JSON on stdout, a summary on stderr).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::common::parse_dtype;
use crate::image::Pixels;
use crate::model::kernels::Precision;
use crate::model::packed::PackedLinear;
use crate::model::{parse_device, weights, weights_dtype, Encoder, IvtConfig, IvtModel};
use crate::text::{TextTokenizer, Tokenized};

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Encoder throughput with random weights: images/s and texts/s at batch 1 and 16, achieved
    /// GFLOP/s, and the GFLOP/s of a plain f32 matmul measured in the same run.
    Encode(EncodeBenchArgs),
    /// Gallery index on synthetic clustered vectors: build time, memory, recall@10 and
    /// queries/s of HNSW at several `ef` against exact search.
    Index(super::bench_index::IndexBenchArgs),
    /// Loads a synthetic gallery for a model into the embedded index or Milvus (bulk-load
    /// images/s), to serve and measure with `bench serve`.
    Gallery(super::bench_gallery::GalleryBenchArgs),
    /// Training speed on a synthetic dataset: forward and forward+backward+update time per
    /// step, pairs/s, and the share of time the model waits for data.
    Train(super::bench_train::TrainBenchArgs),
    /// Load on a running `ivt serve`: queries/s and latency percentiles per concurrency level.
    Serve(super::bench_serve::ServeBenchArgs),
}

/// Arguments of `ivt bench encode`.
#[derive(Debug, clap::Args)]
pub struct EncodeBenchArgs {
    /// Architecture to measure.
    #[arg(long, default_value = "ivt-base")]
    pub preset: String,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute precision: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Minimum seconds measured per case (after one warm-up pass).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub batch_sizes: Vec<usize>,
    /// Text length in tokens, [CLS] and [SEP] included.
    #[arg(long, default_value_t = 64)]
    pub text_tokens: usize,
    /// Inputs to measure: image, text or both (one alone, e.g. to profile it).
    #[arg(long, value_delimiter = ',', default_value = "image,text")]
    pub inputs: Vec<InputKind>,
}

/// An input kind `ivt bench encode` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputKind {
    /// Images at the model's input size.
    Image,
    /// Texts of `--text-tokens` tokens.
    Text,
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Encode(args) => bench_encode(args),
        BenchCommand::Index(args) => super::bench_index::run(args),
        BenchCommand::Serve(args) => super::bench_serve::run(args),
        BenchCommand::Gallery(args) => super::bench_gallery::run(args),
        BenchCommand::Train(args) => super::bench_train::run(args),
    }
}

/// Runs `ivt bench encode`.
fn bench_encode(args: EncodeBenchArgs) -> anyhow::Result<()> {
    let cfg = super::common::preset(&args.preset)?;
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let encoder = random_encoder(&args.preset, &cfg, &device, dtype)?;

    let matmul_gflops = matmul_gflops(&device, args.seconds.min(3.0))?;
    eprintln!("plain f32 matmul 2048x768 @ 768x3072: {matmul_gflops:.1} GFLOP/s");
    let kernel_gflops = if device.is_cpu() {
        kernel_gflops(args.seconds.min(3.0))?
    } else {
        serde_json::Map::new()
    };
    let rows = encode_rows(&args, &cfg, &encoder)?;
    let report = serde_json::json!({
        "bench": "encode",
        "preset": args.preset,
        "device": args.device,
        "dtype": args.dtype,
        "threads": rayon::current_num_threads(),
        "matmul_gflops": matmul_gflops,
        "packed_kernel_gflops": kernel_gflops,
        "image_gflop_per_pass": cfg.image_flops() / 1e9,
        "text_gflop_per_pass": cfg.text_flops(args.text_tokens) / 1e9,
        "results": rows,
    });
    println!("{report}");
    Ok(())
}

/// An encoder of architecture `cfg` with random weights, prepared for inference in `dtype`.
fn random_encoder(
    preset: &str,
    cfg: &IvtConfig,
    device: &Device,
    dtype: DType,
) -> anyhow::Result<Encoder> {
    let stored = weights_dtype(dtype, device);
    let tensors = weights::random_tensors(cfg, stored, device, 0)?;
    let mut model = IvtModel::new(cfg, VarBuilder::from_tensors(tensors, stored, device))?;
    model.prepare_for_inference(dtype)?;
    Ok(Encoder::new(
        model,
        TextTokenizer::builtin(cfg.max_position_embeddings)?,
        preset.to_string(),
    ))
}

/// GFLOP/s of the packed CPU kernels by precision, for those this CPU runs.
fn kernel_gflops(seconds: f64) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut gflops = serde_json::Map::new();
    for (name, precision) in [("f32", Precision::F32), ("bf16", Precision::Bf16)] {
        if let Some(g) = packed_gflops(precision, seconds)? {
            eprintln!("packed {name} product, same shape: {g:.1} GFLOP/s");
            gflops.insert(name.into(), g.into());
        }
    }
    Ok(gflops)
}

/// Images/s and texts/s (with GFLOP/s) at each batch size, one report row each, also on stderr.
fn encode_rows(
    args: &EncodeBenchArgs,
    cfg: &IvtConfig,
    encoder: &Encoder,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let (pixels, text) = sample_inputs(cfg, args.text_tokens);
    let mut rows = Vec::new();
    for &bs in &args.batch_sizes {
        if args.inputs.contains(&InputKind::Image) {
            let imgs: Vec<&Pixels> = vec![&pixels; bs];
            let per_s = measure(args.seconds, bs, || encoder.embed_pixels(&imgs).map(|_| ()))?;
            let gflops = per_s * cfg.image_flops() / 1e9;
            eprintln!("images  batch {bs:>3}: {per_s:8.2}/s  {gflops:7.1} GFLOP/s");
            rows.push(serde_json::json!({"input": "image", "batch": bs, "per_second": per_s, "gflops": gflops}));
        }
        if args.inputs.contains(&InputKind::Text) {
            let txts: Vec<&Tokenized> = vec![&text; bs];
            let per_s = measure(args.seconds, bs, || {
                encoder.embed_tokenized(&txts).map(|_| ())
            })?;
            let gflops = per_s * cfg.text_flops(args.text_tokens) / 1e9;
            eprintln!(
                "texts   batch {bs:>3}: {per_s:8.2}/s  {gflops:7.1} GFLOP/s ({} tokens)",
                args.text_tokens
            );
            rows.push(serde_json::json!({"input": "text", "batch": bs, "tokens": args.text_tokens, "per_second": per_s, "gflops": gflops}));
        }
    }
    Ok(rows)
}

/// A fixed image at the model's size and a `text_tokens`-long token sequence ([CLS] … [SEP]).
fn sample_inputs(cfg: &IvtConfig, text_tokens: usize) -> (Pixels, Tokenized) {
    let [h, w] = cfg.image_size;
    let pixels = Pixels {
        data: (0..3 * h * w)
            .map(|i| ((i % 255) as f32 / 127.5) - 1.0)
            .collect(),
        height: h,
        width: w,
    };
    let text = Tokenized {
        ids: (0..text_tokens)
            .map(|i| match i {
                0 => 101,
                i if i + 1 == text_tokens => 102,
                i => 1000 + i as u32,
            })
            .collect(),
        truncated: false,
    };
    (pixels, text)
}

/// Inputs per second of `f`, which encodes `batch` inputs, after one warm-up call.
fn measure<E: Into<anyhow::Error>>(
    seconds: f64,
    batch: usize,
    mut f: impl FnMut() -> Result<(), E>,
) -> anyhow::Result<f64> {
    f().map_err(Into::into)?;
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < seconds || n == 0 {
        f().map_err(Into::into)?;
        n += batch;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// GFLOP/s of a plain f32 matmul of the shape of an MLP layer over a batch of tokens.
pub fn matmul_gflops(device: &Device, seconds: f64) -> anyhow::Result<f64> {
    let (m, k, n) = (2048usize, 768usize, 3072usize);
    let a = Tensor::randn(0f32, 1f32, (m, k), device)?;
    let b = Tensor::randn(0f32, 1f32, (k, n), device)?;
    let per_s = measure(seconds, 1, || {
        a.matmul(&b).and_then(|c| c.sum_all()).map(|_| ())
    })?;
    Ok(per_s * 2.0 * (m * k * n) as f64 / 1e9)
}

/// GFLOP/s of the packed CPU kernels on the shape of [`matmul_gflops`] (`x W^T` with the weight
/// packed once, bias added), or None where the CPU lacks their instructions.
pub fn packed_gflops(precision: Precision, seconds: f64) -> anyhow::Result<Option<f64>> {
    let (m, k, n) = (2048usize, 768usize, 3072usize);
    let x = Tensor::randn(0f32, 1f32, (m, k), &Device::Cpu)?;
    let w = Tensor::randn(0f32, 1f32, (n, k), &Device::Cpu)?;
    let Some(lin) = PackedLinear::new(&w, None, precision)? else {
        return Ok(None);
    };
    let per_s = measure(seconds, 1, || lin.forward(&x, false).map(|_| ()))?;
    Ok(Some(per_s * 2.0 * (m * k * n) as f64 / 1e9))
}
