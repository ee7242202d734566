//! Locating a model on disk: a directory with `config.json` and weights, or a weights file with
//! a config given separately; and the fingerprint that ties indexes to the model.

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::Device;
use sha2::{Digest, Sha256};

use super::{IvtConfig, ModelError};

/// A resolved model: its configuration and the weights file to read.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Architecture.
    pub config: IvtConfig,
    /// `model.safetensors` or a `.pth` checkpoint.
    pub weights: PathBuf,
    /// Human-readable name (the directory or file stem).
    pub name: String,
    /// A `tokenizer.json` found in the model directory, if any (else the built-in one is used).
    pub tokenizer: Option<PathBuf>,
}

impl ModelFiles {
    /// Resolves `path`: a directory holding `config.json` and `model.safetensors` (else a `.pth`
    /// checkpoint, looked up in that order), or a weights file. `config` overrides the
    /// directory's `config.json` and is required for a bare weights file without one beside it.
    pub fn resolve(path: &Path, config: Option<IvtConfig>) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::NotFound(path.to_path_buf()));
        }
        let (dir, weights) = if path.is_dir() {
            (path.to_path_buf(), find_weights(path)?)
        } else {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (dir, path.to_path_buf())
        };
        let config = match config {
            Some(c) => c,
            None => {
                let p = dir.join("config.json");
                if !p.is_file() {
                    return Err(ModelError::NoConfig(weights));
                }
                read_config(&p)?
            }
        };
        config.validate().map_err(|message| ModelError::Config {
            path: dir.join("config.json").display().to_string(),
            message,
        })?;
        let tokenizer = Some(dir.join("tokenizer.json")).filter(|p| path.is_dir() && p.is_file());
        let stem = if path.is_dir() { path } else { &weights };
        let name = stem
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Ok(Self {
            config,
            weights,
            name,
            tokenizer,
        })
    }

    /// SHA-256 over the canonical config JSON and the weight file's bytes, hex-encoded. Indexes
    /// record it so that a gallery is never searched with a model it was not encoded with.
    pub fn fingerprint(&self) -> Result<String, ModelError> {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.config).unwrap_or_default());
        let mut f = std::fs::File::open(&self.weights).map_err(|source| ModelError::Io {
            context: format!("cannot open {}", self.weights.display()),
            source,
        })?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|source| ModelError::Io {
                context: format!("cannot read {}", self.weights.display()),
                source,
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(format!("{:x}", h.finalize()))
    }
}

/// Reads and parses a `config.json`.
pub(crate) fn read_config(path: &Path) -> Result<IvtConfig, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        context: format!("cannot read {}", path.display()),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn find_weights(dir: &Path) -> Result<PathBuf, ModelError> {
    let st = dir.join("model.safetensors");
    if st.is_file() {
        return Ok(st);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        context: format!("cannot list {}", dir.display()),
        source,
    })?;
    let mut pth: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "pth"))
        .collect();
    pth.sort();
    pth.into_iter()
        .next()
        .ok_or_else(|| ModelError::NoWeights(dir.to_path_buf()))
}

/// Parses `cpu`, `cuda` or `cuda:N` into a device; CUDA needs the `cuda` feature.
pub fn parse_device(name: &str) -> Result<Device, ModelError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = s
                .strip_prefix("cuda:")
                .map(|n| n.parse::<usize>())
                .transpose()
                .map_err(|_| ModelError::Device(format!("`{s}`: expected cuda:<ordinal>")))?
                .unwrap_or(0);
            if !candle_core::utils::cuda_is_available() {
                return Err(ModelError::Device(
                    "cuda: this binary was built without the `cuda` feature \
                     (cargo build --release --features cuda)"
                        .into(),
                ));
            }
            Device::new_cuda(ordinal)
                .map_err(|e| ModelError::Device(format!("cuda:{ordinal}: {e}")))
        }
        other => Err(ModelError::Device(format!(
            "`{other}` is not a device: use cpu, cuda or cuda:N"
        ))),
    }
}

/// Folder of the shipped demo model, relative to a checkout or an installation.
pub const DEMO_MODEL: &str = "models/demo";

/// Where the demo model is: `./models/demo`, `<prefix>/share/ivt/models/demo` beside the
/// executable, `/opt/ivt/models/demo` (the container image), or the source checkout the binary
/// was built from. The first that holds a `config.json` wins.
pub fn demo_model_dir() -> Result<PathBuf, ModelError> {
    let mut candidates = vec![PathBuf::from(DEMO_MODEL)];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(prefix) = exe.parent().and_then(Path::parent) {
            candidates.push(prefix.join("share/ivt").join(DEMO_MODEL));
        }
    }
    candidates.push(Path::new("/opt/ivt").join(DEMO_MODEL));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_MODEL));
    candidates
        .iter()
        .find(|c| c.join("config.json").is_file())
        .cloned()
        .ok_or_else(|| ModelError::NoDemo(candidates))
}
