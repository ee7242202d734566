//! `cargo bench --bench encode`: the encoder benchmark of `ivt bench encode` (full-size `ivt-base`
//! with random weights on CPU), for those who prefer cargo's entry point.

use ivt::cli::bench::{run, BenchCommand, EncodeBenchArgs, InputKind};

fn main() -> anyhow::Result<()> {
    let seconds = std::env::var("IVT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    run(BenchCommand::Encode(EncodeBenchArgs {
        preset: "ivt-base".into(),
        device: "cpu".into(),
        dtype: "f32".into(),
        seconds,
        batch_sizes: vec![1, 16],
        text_tokens: 64,
        inputs: vec![InputKind::Image, InputKind::Text],
    }))
}
