//! `ivt bench serve`: a load generator for a running `ivt serve`. N concurrent clients send
//! Search requests for T seconds per level; it reports queries/s, latency percentiles, the
//! server's overhead (end-to-end latency minus the encode and search time the server reports)
//! and errors by status code.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::proto::retrieval_client::RetrievalClient;
use crate::proto::{AddImageRequest, InfoRequest, SearchRequest};

/// Arguments of `ivt bench serve`.
#[derive(Debug, clap::Args)]
pub struct ServeBenchArgs {
    /// Server URL.
    #[arg(long, env = "IVT_BENCH_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Concurrency levels (clients with one request in flight each), measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    pub concurrency: Vec<usize>,
    /// Seconds measured per level (after one second of warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// HTTP/2 connections the clients share (0: one per client, at most 16).
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// top_k of each Search.
    #[arg(long, default_value_t = 10)]
    pub top_k: u32,
    /// Bearer token, if the server requires one.
    #[arg(long, env = "IVT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Add this many synthetic images through AddImages before measuring (0: search the
    /// gallery as it is).
    #[arg(long, default_value_t = 0)]
    pub seed_gallery: usize,
}

/// Descriptions in the style of CUHK-PEDES captions, varied per request.
const QUERIES: &[&str] = &[
    "a woman in a red coat carrying a black backpack and wearing white sneakers",
    "a man wearing a white shirt, blue jeans and brown leather shoes",
    "the person has short black hair, a grey jacket and dark trousers",
    "a young girl in a yellow dress with a small pink bag",
    "an older man with a walking stick and a dark green sweater",
    "a woman wearing glasses, a striped top and black trousers, holding a phone",
];

/// What one request observed.
struct Sample {
    latency: Duration,
    /// Server-reported encode + search time.
    work: Duration,
    code: tonic::Code,
}

/// Runs the load generator.
pub fn run(args: ServeBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn bench(args: ServeBenchArgs) -> anyhow::Result<()> {
    let max = args.concurrency.iter().copied().max().unwrap_or(1);
    let channels = connect(&args, max).await?;
    let mut first = client(&channels[0], &args);
    let info = first.info(InfoRequest {}).await?.into_inner();
    if args.seed_gallery > 0 {
        let limit = info.limits.map(|l| l.max_add_batch).unwrap_or(64) as usize;
        seed(&mut first, args.seed_gallery, limit.max(1)).await?;
    }
    let gallery = first.info(InfoRequest {}).await?.into_inner().gallery_size;
    eprintln!(
        "model {} (dim {}), gallery {gallery} images",
        info.model_name, info.dim
    );
    eprintln!("clients      q/s   p50 ms   p90 ms   p99 ms  overhead p50 ms  errors");
    let mut rows = Vec::new();
    for &c in &args.concurrency {
        run_level(&channels, &args, c, Duration::from_secs(1)).await;
        let samples = run_level(&channels, &args, c, Duration::from_secs_f64(args.seconds)).await;
        let row = summarise(c, &samples, args.seconds);
        eprintln!(
            "{c:>7} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>16.3}  {}",
            row["qps"].as_f64().unwrap_or(0.0),
            row["p50_ms"].as_f64().unwrap_or(0.0),
            row["p90_ms"].as_f64().unwrap_or(0.0),
            row["p99_ms"].as_f64().unwrap_or(0.0),
            row["overhead_p50_ms"].as_f64().unwrap_or(0.0),
            row["errors"]
        );
        rows.push(row);
    }
    let report = serde_json::json!({
        "bench": "serve",
        "addr": args.addr,
        "model": info.model_name,
        "gallery_size": gallery,
        "seconds": args.seconds,
        "top_k": args.top_k,
        "results": rows,
    });
    println!("{report}");
    Ok(())
}

async fn connect(args: &ServeBenchArgs, clients: usize) -> anyhow::Result<Vec<Channel>> {
    let n = match args.connections {
        0 => clients.clamp(1, 16),
        n => n,
    };
    let endpoint = Endpoint::from_shared(args.addr.clone())
        .with_context(|| format!("bad server URL {}", args.addr))?
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        let ch = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", args.addr))?;
        channels.push(ch);
    }
    Ok(channels)
}

type Client = RetrievalClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <key>` when a key is given.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.0 {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

fn client(channel: &Channel, args: &ServeBenchArgs) -> Client {
    let header = args
        .api_key
        .as_ref()
        .and_then(|k| format!("Bearer {k}").parse().ok());
    RetrievalClient::with_interceptor(channel.clone(), Bearer(header))
}

async fn run_level(
    channels: &[Channel],
    args: &ServeBenchArgs,
    clients: usize,
    duration: Duration,
) -> Vec<Sample> {
    let until = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut c = client(&channels[i % channels.len()], args);
        let top_k = args.top_k;
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = i;
            while Instant::now() < until {
                let text = format!("{} {n}", QUERIES[n % QUERIES.len()]);
                n += clients;
                samples.push(one_search(&mut c, text, top_k).await);
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

async fn one_search(c: &mut Client, text: String, top_k: u32) -> Sample {
    let req = SearchRequest {
        text,
        top_k,
        ..Default::default()
    };
    let start = Instant::now();
    let result = c.search(req).await;
    let latency = start.elapsed();
    match result {
        Ok(r) => {
            let t = r.into_inner().timing.unwrap_or_default();
            Sample {
                latency,
                work: Duration::from_micros(t.encode_us + t.search_us),
                code: tonic::Code::Ok,
            }
        }
        Err(s) => Sample {
            latency,
            work: Duration::ZERO,
            code: s.code(),
        },
    }
}

fn summarise(clients: usize, samples: &[Sample], seconds: f64) -> serde_json::Value {
    let ok: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.code == tonic::Code::Ok)
        .collect();
    let mut latencies: Vec<f64> = ok.iter().map(|s| ms(s.latency)).collect();
    let mut overheads: Vec<f64> = ok
        .iter()
        .map(|s| ms(s.latency.saturating_sub(s.work)))
        .collect();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.code != tonic::Code::Ok) {
        *errors.entry(format!("{:?}", s.code)).or_default() += 1;
    }
    serde_json::json!({
        "concurrency": clients,
        "requests": samples.len(),
        "qps": ok.len() as f64 / seconds,
        "p50_ms": percentile(&mut latencies, 0.50),
        "p90_ms": percentile(&mut latencies, 0.90),
        "p99_ms": percentile(&mut latencies, 0.99),
        "overhead_p50_ms": percentile(&mut overheads, 0.50),
        "errors": errors,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile; 0 for no samples.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Adds `n` synthetic person crops (random-looking PNGs, ids `bench-<run>-<i>`).
async fn seed(c: &mut Client, n: usize, per_call: usize) -> anyhow::Result<()> {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut added = 0;
    while added < n {
        let batch: Vec<AddImageRequest> = (added..n.min(added + per_call))
            .map(|i| synthetic_image(run, i))
            .collect::<anyhow::Result<_>>()?;
        added += batch.len();
        c.add_images(tokio_stream::iter(batch)).await?;
    }
    eprintln!("added {n} synthetic images");
    Ok(())
}

fn synthetic_image(run: u64, i: usize) -> anyhow::Result<AddImageRequest> {
    let seed = i as u32;
    let img = image::RgbImage::from_fn(48, 128, |x, y| {
        let v = seed.wrapping_mul(2_654_435_761) ^ (x * 31 + y * 17);
        image::Rgb([(v >> 3) as u8, (v >> 11) as u8, (v >> 19) as u8])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)?;
    Ok(AddImageRequest {
        image: png.into_inner(),
        image_id: format!("bench-{run}-{i}"),
        person_id: format!("bench-person-{}", i / 4),
        camera_id: format!("cam-{}", i % 8),
        ..Default::default()
    })
}
