//! Arguments shared by the commands that load a model or open a gallery.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::DType;

use crate::index::milvus::{Consistency, MilvusConfig, MilvusGallery};
use crate::index::{EmbeddedGallery, GalleryBackend, GalleryIndex, HnswParams};
use crate::model::{demo_model_dir, parse_device, Encoder, IvtConfig, ModelFiles, PRESETS};

/// Which model to load and where to run it.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model directory (config.json + model.safetensors or a .pth checkpoint) or a weights file.
    /// Default: the shipped demo model (`models/demo`), trained on `ivt synth` data.
    #[arg(long, env = "IVT_MODEL")]
    pub model: Option<PathBuf>,
    /// Model config JSON, overriding the directory's config.json (needed for a bare weights file).
    #[arg(long, env = "IVT_CONFIG", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Named architecture instead of a config file: ivt-base (stride 12) or ivt-base-s16.
    #[arg(long, env = "IVT_PRESET")]
    pub preset: Option<String>,
    /// Device: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, env = "IVT_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Compute precision: f32 (exact, the default), or opt-in reduced precision: f16/bf16 on GPUs;
    /// bf16 on the CPU (bf16 matrix products over f32 weights through AVX512-BF16, or MKL's in
    /// MKL builds; cosine to f32 >= 0.999; f32 with a warning on CPUs without AVX512-BF16).
    /// candle's CPU f16 matmul is slower than f32.
    #[arg(long, env = "IVT_DTYPE", default_value = "f32")]
    pub dtype: String,
}

impl ModelArgs {
    /// Resolves the model files and config.
    pub fn files(&self) -> anyhow::Result<ModelFiles> {
        let config = match (&self.config, &self.preset) {
            (Some(p), _) => Some(crate::model::weights::read_config_file(p)?),
            (None, Some(name)) => Some(preset(name)?),
            (None, None) => None,
        };
        let path = match &self.model {
            Some(p) => p.clone(),
            None => demo_model_dir()?,
        };
        Ok(ModelFiles::resolve(&path, config)?)
    }

    /// Loads the encoder on the chosen device.
    pub fn load(&self) -> anyhow::Result<(Encoder, ModelFiles)> {
        let files = self.files()?;
        let device = parse_device(&self.device)?;
        let dtype = parse_dtype(&self.dtype)?;
        tracing::info!(model = %files.weights.display(), device = %self.device, "loading model");
        let encoder = Encoder::load(&files, &device, dtype)
            .with_context(|| format!("loading {}", files.weights.display()))?;
        Ok((encoder, files))
    }
}

/// The named architecture preset, or an error listing the known names.
pub fn preset(name: &str) -> anyhow::Result<IvtConfig> {
    IvtConfig::preset(name)
        .with_context(|| format!("unknown preset `{name}`; known: {}", PRESETS.join(", ")))
}

/// Parses the compute precision (f32/f16/bf16). On the CPU, bf16 means bf16 matrix products
/// with f32 accumulation over f32 master weights: MKL's in MKL builds, otherwise the AVX512-BF16
/// kernels, falling back to f32 (with a warning) on CPUs without them.
pub fn parse_dtype(s: &str) -> anyhow::Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => anyhow::bail!("unknown dtype `{other}`: use f32, f16 or bf16"),
    }
}

/// Reads non-empty lines of a file (for --text-file / --image-list).
pub fn read_lines(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect())
}

/// Where a gallery lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The embedded hnsw_rs index: a directory (--index / --out).
    Embedded,
    /// A Milvus collection (--milvus-uri, --milvus-collection).
    Milvus,
}

/// Gallery backend selection, shared by serve, search, eval and index.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Gallery backend: the embedded HNSW index (a directory) or a Milvus collection, for
    /// galleries beyond one machine.
    #[arg(long, env = "IVT_GALLERY_BACKEND", value_enum, default_value_t = BackendKind::Embedded)]
    pub gallery_backend: BackendKind,
    /// Milvus address (`http://host:19530`, `https://...`).
    #[arg(long, env = "IVT_MILVUS_URI", default_value = "http://localhost:19530")]
    pub milvus_uri: String,
    /// Milvus credentials: `user:password` or an API key.
    #[arg(long, env = "IVT_MILVUS_TOKEN", hide_env_values = true)]
    pub milvus_token: Option<String>,
    /// Milvus database (default: the server's default database).
    #[arg(long, env = "IVT_MILVUS_DATABASE")]
    pub milvus_database: Option<String>,
    /// Milvus collection holding the gallery.
    #[arg(long, env = "IVT_MILVUS_COLLECTION", default_value = "ivt_gallery")]
    pub milvus_collection: String,
    /// Read consistency: session (the default: this process reads its own writes; other
    /// clients' writes show within Milvus' time tick), strong (every write, from anyone; each
    /// read waits for the time tick, ~200 ms), bounded or eventually.
    #[arg(long, env = "IVT_MILVUS_CONSISTENCY", value_enum, default_value_t = Consistency::Session)]
    pub milvus_consistency: Consistency,
    /// Deadline of one Milvus request, in seconds.
    #[arg(long, env = "IVT_MILVUS_TIMEOUT_S", default_value_t = 60.0)]
    pub milvus_timeout_s: f64,
    /// Retries of a failed Milvus request (exponential backoff from 0.2 s) before the caller
    /// gets UNAVAILABLE.
    #[arg(long, env = "IVT_MILVUS_RETRIES", default_value_t = 4)]
    pub milvus_retries: u32,
}

impl BackendArgs {
    /// The Milvus configuration when the Milvus backend is selected; `hnsw` applies when the
    /// collection is created.
    pub fn milvus(&self, hnsw: HnswParams) -> anyhow::Result<Option<MilvusConfig>> {
        if self.gallery_backend != BackendKind::Milvus {
            return Ok(None);
        }
        let mut config = MilvusConfig::new(&self.milvus_uri, &self.milvus_collection);
        config.token = self.milvus_token.clone();
        config.database = self.milvus_database.clone();
        config.consistency = self.milvus_consistency;
        config.hnsw = hnsw;
        config.retries = self.milvus_retries;
        config.timeout = std::time::Duration::try_from_secs_f64(self.milvus_timeout_s)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--milvus-timeout-s must be a positive number")?;
        Ok(Some(config))
    }

    /// Opens an existing gallery: the embedded index at `dir`, or the Milvus collection; either
    /// must have been built with this model.
    pub fn open(
        &self,
        dir: Option<&std::path::Path>,
        fingerprint: &str,
        dim: usize,
    ) -> anyhow::Result<Box<dyn GalleryBackend>> {
        match self.milvus(HnswParams::default())? {
            Some(config) => {
                let name = config.collection.clone();
                let gallery = MilvusGallery::open(config, fingerprint, dim)
                    .with_context(|| format!("opening Milvus collection {name}"))?;
                Ok(Box::new(gallery))
            }
            None => {
                let dir = dir.context("--index is required with the embedded gallery backend")?;
                let index = GalleryIndex::open_verified_read_only(dir, fingerprint)
                    .with_context(|| format!("opening index {}", dir.display()))?;
                Ok(Box::new(EmbeddedGallery::new(index)))
            }
        }
    }
}
