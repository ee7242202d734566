//! `ivt bench index`: HNSW against exact search on synthetic clustered, L2-normalised vectors
//! (a mixture of Gaussians, not uniform noise): build time, memory, recall@10 and queries/s.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::index::VectorStorage;
use crate::index::{GalleryIndex, HnswParams, ImageRecord, SearchFilter, SearchParams};

/// Arguments of `ivt bench index`.
#[derive(Debug, clap::Args)]
pub struct IndexBenchArgs {
    /// Gallery size.
    #[arg(long, default_value_t = 200_000)]
    pub vectors: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 768)]
    pub dim: usize,
    /// Gaussian clusters in the mixture (think persons seen from several cameras).
    #[arg(long, default_value_t = 5_000)]
    pub clusters: usize,
    /// Intrinsic dimension of the cluster centres (0 = independent random centres). Real
    /// embeddings vary along few directions; independent centres in 768-d are all orthogonal,
    /// which leaves a graph nothing to navigate by (HNSW's worst case, worth measuring too).
    #[arg(long, default_value_t = 32)]
    pub latent_dim: usize,
    /// Per-coordinate standard deviation around a cluster centre, before normalisation.
    #[arg(long, default_value_t = 0.03)]
    pub spread: f32,
    /// Query vectors (drawn from the same mixture, not in the gallery).
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// HNSW `ef` values to measure.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,96,128,256")]
    pub ef: Vec<usize>,
    /// HNSW neighbours per node.
    #[arg(long, default_value_t = HnswParams::default().max_nb_connection)]
    pub hnsw_m: usize,
    /// HNSW candidate list while building.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    pub ef_construction: usize,
    /// Store embeddings as f16.
    #[arg(long)]
    pub f16: bool,
    /// Where to write the index (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Vectors generated and added per step, bounding the bench's own memory.
const CHUNK: usize = 8_192;
/// Nearest neighbours compared.
const K: usize = 10;

/// A mixture of Gaussians on the unit sphere.
pub(crate) struct Mixture {
    centres: Vec<Vec<f32>>,
    spread: f32,
}

impl Mixture {
    fn new(rng: &mut StdRng, args: &IndexBenchArgs) -> Self {
        Self::generate(rng, args.dim, args.clusters, args.latent_dim, args.spread)
    }

    /// `clusters` centres in `dim` dimensions drawn from a `latent`-dimensional Gaussian (0:
    /// plain Gaussians); samples spread `spread` around them.
    pub(crate) fn generate(
        rng: &mut StdRng,
        dim: usize,
        clusters: usize,
        latent: usize,
        spread: f32,
    ) -> Self {
        // Centres = a random linear map of latent Gaussians (or plain Gaussians).
        let map: Vec<f32> = (0..dim * latent).map(|_| gaussian(rng)).collect();
        let centre = |rng: &mut StdRng| -> Vec<f32> {
            if latent == 0 {
                return (0..dim).map(|_| gaussian(rng)).collect();
            }
            let z: Vec<f32> = (0..latent).map(|_| gaussian(rng)).collect();
            map.chunks(latent)
                .map(|row| row.iter().zip(&z).map(|(a, b)| a * b).sum())
                .collect()
        };
        let centres = (0..clusters.max(1))
            .map(|_| normalise(centre(rng)))
            .collect();
        Mixture { centres, spread }
    }

    fn sample(&self, rng: &mut StdRng) -> Vec<f32> {
        self.sample_with_cluster(rng).1
    }

    /// A sample and the index of its cluster.
    pub(crate) fn sample_with_cluster(&self, rng: &mut StdRng) -> (usize, Vec<f32>) {
        let i = rng.random_range(0..self.centres.len());
        let c = &self.centres[i];
        let v = normalise(c.iter().map(|x| x + self.spread * gaussian(rng)).collect());
        (i, v)
    }
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller: the rand core crate has no normal distribution.
    let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn normalise(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|a| a / n).collect()
}

/// Resident memory of this process from /proc/self/status, in MiB (Linux only).
fn memory() -> serde_json::Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    serde_json::json!({
        "rss_mib": field("VmRSS:"),
        "rss_anon_mib": field("RssAnon:"),
        "rss_file_mib": field("RssFile:"),
        "peak_rss_mib": field("VmHWM:"),
    })
}

fn mib(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// Runs the benchmark; a JSON report goes to stdout, a summary to stderr.
pub fn run(args: IndexBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.ef.is_empty(), "--ef needs at least one value");
    anyhow::ensure!(args.queries >= 1, "--queries must be at least 1");
    let tmp = tempfile_dir(&args)?;
    let dir = tmp.join("index");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mixture = Mixture::new(&mut rng, &args);
    let queries: Vec<Vec<f32>> = (0..args.queries)
        .map(|_| mixture.sample(&mut rng))
        .collect();

    let (store_s, graph_s) = build(&args, &dir, &mixture, &mut rng)?;
    let raw_mib = (args.vectors * args.dim * 4) as f64 / (1 << 20) as f64;
    eprintln!(
        "built {} x {}: storing {store_s:.1}s, graph {graph_s:.1}s",
        args.vectors, args.dim
    );

    let m = open_and_search(&dir, &queries, &args.ef)?;
    let rows = hnsw_rows(&m);
    let index_mib = mib(&m.after_search, "rss_mib") - mib(&m.before_open, "rss_mib");
    let with_exact_mib = mib(&m.after_exact, "rss_mib") - mib(&m.before_open, "rss_mib");
    eprintln!(
        "exact: {:.1} queries/s; open {:.2}s; index memory after HNSW searches {index_mib:.0} MiB \
         = {:.2}x raw f32 ({raw_mib:.0} MiB); {:.2}x once exact search has mapped the embeddings",
        m.exact_qps,
        m.open_s,
        index_mib / raw_mib,
        with_exact_mib / raw_mib
    );
    let index = m.index;
    let self_recall = self_recall(&index, 2_000.min(args.vectors))?;
    let report = serde_json::json!({
        "bench": "index",
        "vectors": args.vectors, "dim": args.dim, "clusters": args.clusters, "latent_dim": args.latent_dim, "spread": args.spread,
        "queries": args.queries, "threads": rayon::current_num_threads(),
        "hnsw_params": index.manifest().hnsw, "storage": index.manifest().storage,
        "build_seconds": {"store": store_s, "graph": graph_s},
        "open_seconds": m.open_s,
        "raw_vectors_mib": raw_mib,
        "memory": {"before_open": m.before_open, "after_open": m.after_open, "after_search": m.after_search,
                   "after_exact": m.after_exact,
                   "index_mib": index_mib, "index_over_raw": index_mib / raw_mib,
                   "with_exact_mib": with_exact_mib, "with_exact_over_raw": with_exact_mib / raw_mib},
        "exact_queries_per_second": m.exact_qps,
        "hnsw": rows,
        "self_recall_at_1": self_recall,
    });
    println!("{report}");
    drop(index);
    if args.dir.is_none() {
        std::fs::remove_dir_all(&tmp)?;
    }
    Ok(())
}

/// The reopened index, what searching it measured, and resident memory (see [`memory`]) at
/// each stage.
struct Measured {
    index: GalleryIndex,
    open_s: f64,
    hnsw: Vec<EfRun>,
    exact_qps: f64,
    /// The exact top-k of each query.
    truth: Vec<HashSet<String>>,
    before_open: serde_json::Value,
    after_open: serde_json::Value,
    after_search: serde_json::Value,
    after_exact: serde_json::Value,
}

/// HNSW searches at one `ef`.
struct EfRun {
    ef: usize,
    qps: f64,
    /// The ids each query found.
    found: Vec<Vec<String>>,
}

/// Reopens the built index read-only and runs the queries with HNSW at each `ef`, then exactly.
fn open_and_search(dir: &Path, queries: &[Vec<f32>], efs: &[usize]) -> anyhow::Result<Measured> {
    // The build's freed memory out of the baseline, as the reload does with its own.
    crate::index::release_freed_heap();
    let before_open = memory();
    let t = Instant::now();
    let index = GalleryIndex::open_read_only(dir, "bench")?;
    let open_s = t.elapsed().as_secs_f64();
    let after_open = memory();
    // HNSW first, exact afterwards: the memory after the HNSW searches is what an HNSW-serving
    // process holds; exact search then maps every stored embedding on top (a service does that
    // only for selective filters). Recall is scored once the exact results are known.
    // Warm-up: thread pool start and first touches of the graph, not counted in any row.
    measure_hnsw(&index, &queries[..queries.len().min(200)], efs[0])?;
    let mut hnsw = Vec::new();
    for &ef in efs {
        let (qps, found) = measure_hnsw(&index, queries, ef)?;
        hnsw.push(EfRun { ef, qps, found });
    }
    let after_search = memory();
    let (exact_qps, truth) = measure_exact(&index, queries)?;
    let after_exact = memory();
    Ok(Measured {
        index,
        open_s,
        hnsw,
        exact_qps,
        truth,
        before_open,
        after_open,
        after_search,
        after_exact,
    })
}

/// One report row per `--ef` (recall against the exact results, speed), each also on stderr.
fn hnsw_rows(m: &Measured) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for &EfRun { ef, qps, ref found } in &m.hnsw {
        let recall = recall(found, &m.truth);
        eprintln!(
            "ef {ef:>4}: recall@10 {recall:.4}  {qps:9.1} queries/s  ({:.1}x exact)",
            qps / m.exact_qps
        );
        rows.push(serde_json::json!({"ef": ef, "recall_at_10": recall, "queries_per_second": qps, "speedup_vs_exact": qps / m.exact_qps}));
    }
    rows
}

fn tempfile_dir(args: &IndexBenchArgs) -> anyhow::Result<PathBuf> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("ivt-bench-index-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes the gallery in chunks, then builds the graph; returns (store, graph) seconds.
fn build(
    args: &IndexBenchArgs,
    dir: &Path,
    mixture: &Mixture,
    rng: &mut StdRng,
) -> anyhow::Result<(f64, f64)> {
    let params = HnswParams {
        max_nb_connection: args.hnsw_m,
        ef_construction: args.ef_construction,
        ..HnswParams::default()
    };
    let storage = if args.f16 {
        VectorStorage::F16
    } else {
        VectorStorage::F32
    };
    let _ = GalleryIndex::discard_pending_builds(dir)?;
    let mut index = GalleryIndex::begin_build(dir, "bench", args.dim, params, storage)?;
    let t = Instant::now();
    for start in (0..args.vectors).step_by(CHUNK) {
        let end = (start + CHUNK).min(args.vectors);
        let items = (start..end)
            .map(|i| {
                let mut r = ImageRecord::new(format!("v{i}"), format!("p{}", i / 4));
                r.camera_id = Some(format!("c{}", i % 16));
                (r, mixture.sample(rng))
            })
            .collect();
        index.add(items)?;
    }
    let store_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    index.publish()?;
    Ok((store_s, t.elapsed().as_secs_f64()))
}

/// Exact queries/s (queries one after another, each scanning in parallel) and the top-10 ids.
fn measure_exact(
    index: &GalleryIndex,
    queries: &[Vec<f32>],
) -> anyhow::Result<(f64, Vec<HashSet<String>>)> {
    let params = SearchParams {
        top_k: K,
        ef: None,
        exact: true,
    };
    let t = Instant::now();
    let mut truth = Vec::with_capacity(queries.len());
    for q in queries {
        let hits = index.search_images(q, &params, &SearchFilter::default())?;
        truth.push(hits.into_iter().map(|h| h.record.image_id).collect());
    }
    Ok((queries.len() as f64 / t.elapsed().as_secs_f64(), truth))
}

/// HNSW queries/s (queries spread over all cores, one thread each) and the ids found.
fn measure_hnsw(
    index: &GalleryIndex,
    queries: &[Vec<f32>],
    ef: usize,
) -> anyhow::Result<(f64, Vec<Vec<String>>)> {
    let params = SearchParams {
        top_k: K,
        ef: Some(ef),
        exact: false,
    };
    let t = Instant::now();
    let found: Vec<Vec<String>> = queries
        .par_iter()
        .map(|q| {
            let hits = index.search_images(q, &params, &SearchFilter::default())?;
            Ok(hits.into_iter().map(|h| h.record.image_id).collect())
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((queries.len() as f64 / t.elapsed().as_secs_f64(), found))
}

/// Share of the exact top-k found.
fn recall(found: &[Vec<String>], truth: &[HashSet<String>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, want)| f.iter().filter(|id| want.contains(*id)).count())
        .sum();
    let total: usize = truth.iter().map(HashSet::len).sum();
    hits as f64 / total.max(1) as f64
}

/// Fraction of gallery points that find themselves first (hnsw_rs issue #32 guard).
fn self_recall(index: &GalleryIndex, n: usize) -> anyhow::Result<f64> {
    let params = SearchParams {
        top_k: 1,
        ef: None,
        exact: false,
    };
    let step = (index.len() / n.max(1)).max(1);
    let ids: Vec<String> = (0..index.len())
        .step_by(step)
        .map(|i| format!("v{i}"))
        .collect();
    let hits: usize = ids
        .par_iter()
        .map(|id| {
            let v = index.embedding(id).unwrap_or_default();
            let top = index.search_images(&v, &params, &SearchFilter::default())?;
            Ok(usize::from(
                top.first().is_some_and(|h| &h.record.image_id == id),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .sum();
    Ok(hits as f64 / ids.len().max(1) as f64)
}
