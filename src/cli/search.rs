//! `ivt search`: one query (a description, an image file or a gallery image) against a gallery
//! index, results as one JSON object on stdout.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::common::{BackendArgs, ModelArgs};
use crate::index::{GalleryBackend, ImageHit, PersonHit, SearchFilter, SearchParams};
use crate::model::Encoder;

/// Arguments of `ivt search`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("query").required(true).multiple(false))]
pub struct SearchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Index directory (built with the same model); not used with the Milvus backend.
    #[arg(long, env = "IVT_INDEX")]
    pub index: Option<PathBuf>,
    /// Gallery backend (embedded index or Milvus).
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Description of the person to find.
    #[arg(long, group = "query")]
    pub text: Option<String>,
    /// Image of the person to find (JPEG, PNG, WebP, BMP), e.g. a crop from another camera.
    #[arg(long, group = "query")]
    pub image: Option<PathBuf>,
    /// Id of a gallery image: its stored embedding is the query, and the image itself is left
    /// out of the results ("where else was this person?").
    #[arg(long, group = "query")]
    pub image_id: Option<String>,
    /// Number of persons (or images with --images) to return.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Rank images instead of persons.
    #[arg(long)]
    pub images: bool,
    /// Only images from this camera (repeatable).
    #[arg(long = "camera")]
    pub cameras: Vec<String>,
    /// Only images captured at or after this RFC 3339 time.
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// Only images captured at or before this RFC 3339 time.
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
    /// Leave out this person (repeatable).
    #[arg(long = "exclude-person")]
    pub exclude_persons: Vec<String>,
    /// HNSW candidate list size (default: the index's); larger is slower and more accurate.
    #[arg(long)]
    pub ef: Option<usize>,
    /// Exact (brute-force) search instead of HNSW.
    #[arg(long)]
    pub exact: bool,
}

/// Runs `ivt search`.
pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let (encoder, files) = args.model.load()?;
    let index = args
        .backend
        .open(args.index.as_deref(), &files.fingerprint()?, encoder.dim())?;
    let query = Query::from_args(&args, &encoder, index.as_ref())?;
    let params = SearchParams {
        top_k: args.top_k,
        ef: args.ef,
        exact: args.exact,
    };
    let filter = SearchFilter {
        camera_ids: args.cameras.clone(),
        captured_from: args.from,
        captured_to: args.to,
        exclude_person_ids: args.exclude_persons.clone(),
        exclude_image_ids: query.exclude_image_ids,
    };
    let results = if args.images {
        let hits = index.search_images(&query.embedding, &params, &filter)?;
        serde_json::json!({ "images": hits.iter().map(image_json).collect::<Vec<_>>() })
    } else {
        let persons = index.search_persons(&query.embedding, &params, &filter)?;
        serde_json::json!({ "persons": persons.iter().map(person_json).collect::<Vec<_>>() })
    };
    let mut out = query.described;
    let summary = serde_json::json!({
        "gallery": index.location(),
        "truncated": query.truncated,
        "gallery_size": index.len(),
    });
    if let Some(out) = out.as_object_mut() {
        for part in [summary, results] {
            if let Some(part) = part.as_object() {
                out.extend(part.clone());
            }
        }
    }
    println!("{out}");
    Ok(())
}

/// What `ivt search` looks for.
struct Query {
    embedding: Vec<f32>,
    /// The text was cut to the model's maximum length.
    truncated: bool,
    /// The query as the output echoes it (`query`, `query_image` or `query_image_id`).
    described: serde_json::Value,
    /// A gallery image used as the query is not its own result.
    exclude_image_ids: Vec<String>,
}

impl Query {
    /// Embeds `--text` or `--image`, or looks up `--image-id` in `index`.
    fn from_args(
        args: &SearchArgs,
        encoder: &Encoder,
        index: &dyn GalleryBackend,
    ) -> anyhow::Result<Self> {
        let query = |embedding, truncated, described| Query {
            embedding,
            truncated,
            described,
            exclude_image_ids: Vec::new(),
        };
        match (&args.text, &args.image, &args.image_id) {
            (Some(text), _, _) => {
                let q = encoder
                    .encode_texts(&[text.as_str()])?
                    .pop()
                    .context("the encoder returned no embedding")?;
                if q.truncated {
                    tracing::warn!("query truncated to the model's maximum length");
                }
                let described = serde_json::json!({ "query": text });
                Ok(query(q.embedding, q.truncated, described))
            }
            (_, Some(path), _) => {
                let pixels =
                    crate::image::load(path, &encoder.config().image_spec(), Default::default())
                        .with_context(|| format!("reading the query image {}", path.display()))?;
                let embedding = encoder
                    .embed_pixels(&[&pixels])?
                    .pop()
                    .context("the encoder returned no embedding")?;
                let path = path.display().to_string();
                Ok(query(
                    embedding,
                    false,
                    serde_json::json!({ "query_image": path }),
                ))
            }
            (_, _, Some(id)) => {
                let (_, embedding) = index
                    .image(id)?
                    .with_context(|| format!("image id `{id}` is not in {}", index.location()))?;
                let described = serde_json::json!({ "query_image_id": id });
                Ok(Query {
                    exclude_image_ids: vec![id.clone()],
                    ..query(embedding, false, described)
                })
            }
            (None, None, None) => anyhow::bail!("give --text, --image or --image-id"),
        }
    }
}

/// A person hit: id, score and their image hits.
fn person_json(p: &PersonHit) -> serde_json::Value {
    serde_json::json!({
        "person_id": p.person_id,
        "score": p.score,
        "images": p.images.iter().map(image_json).collect::<Vec<_>>(),
    })
}

/// An image hit with its metadata flattened next to the score.
fn image_json(hit: &ImageHit) -> serde_json::Value {
    let mut v = serde_json::to_value(&hit.record).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("score".into(), hit.score.into());
    }
    v
}
