//! The `ivt.v1.Retrieval` handlers: validate, embed through [`Infer`], search or change the
//! [`Gallery`], and answer. Each RPC runs in its own tracing span and is counted by method and
//! status.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::convert::Query;
use super::gallery::Gallery;
use super::gate::Handled;
use super::infer::{Embedded, Infer};
use super::{convert, deadline, metrics, Limits, ServiceError};
use crate::index::IndexError;
use crate::proto;
use crate::proto::retrieval_server::Retrieval;

/// What `Info` reports about the model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Model name.
    pub name: String,
    /// The model's config as JSON.
    pub config_json: String,
    /// Embedding dimension.
    pub dim: usize,
}

/// The loaded model and index; present once start-up finished.
pub struct Core {
    /// The encoding pipeline.
    pub infer: Infer,
    /// The gallery index.
    pub gallery: Gallery,
    /// Model description.
    pub model: ModelInfo,
}

/// State shared by all handler clones: the server answers (health, UNAVAILABLE) before the model
/// is loaded, so the core is filled in once, later.
pub struct Shared {
    /// Set when the model is warm and the index open.
    pub core: OnceLock<Core>,
    /// Request limits.
    pub limits: Limits,
    /// Largest model batch.
    pub max_batch: usize,
    /// Most inputs per Encode call (and per admission of an AddImages chunk).
    pub max_inputs: usize,
}

/// The gRPC service implementation.
#[derive(Clone)]
pub struct RetrievalService {
    shared: Arc<Shared>,
}

impl RetrievalService {
    /// A service over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The model and index, or UNAVAILABLE while they load.
    pub(super) fn core(&self) -> Result<&Core, ServiceError> {
        self.shared.core.get().ok_or(ServiceError::NotReady(
            "the model and index are still loading",
        ))
    }

    fn check_text(&self, text: &str, field: &str) -> Result<(), ServiceError> {
        let max = self.shared.limits.max_text_bytes;
        if text.trim().is_empty() {
            return Err(ServiceError::InvalidArgument(format!("{field} is empty")));
        }
        if text.len() > max {
            return Err(ServiceError::InvalidArgument(format!(
                "{field} is {} bytes; the limit is {max}",
                text.len()
            )));
        }
        Ok(())
    }

    fn check_image(&self, image: &[u8], field: &str) -> Result<(), ServiceError> {
        let max = self.shared.limits.max_image_bytes;
        if image.is_empty() {
            return Err(ServiceError::InvalidArgument(format!("{field} is empty")));
        }
        if image.len() > max {
            return Err(ServiceError::InvalidArgument(format!(
                "{field} is {} bytes; the limit is {max}",
                image.len()
            )));
        }
        Ok(())
    }

    fn check_count(&self, n: usize, field: &str) -> Result<(), ServiceError> {
        let max = self.shared.max_inputs;
        if n == 0 || n > max {
            return Err(ServiceError::InvalidArgument(format!(
                "{field} has {n} entries; send between 1 and {max}"
            )));
        }
        Ok(())
    }
}

/// Runs one request of either protocol (gRPC or HTTP): span, deadline and metrics.
pub(super) async fn run<T>(
    method: &'static str,
    deadline: Option<Instant>,
    work: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let start = Instant::now();
    let span = tracing::info_span!("rpc", method);
    let result = deadline::within(deadline, work)
        .instrument(span.clone())
        .await;
    let elapsed = start.elapsed();
    let code = result
        .as_ref()
        .map_or_else(ServiceError::code, |_| tonic::Code::Ok);
    metrics::request(method, code, elapsed);
    span.in_scope(|| match &result {
        Ok(_) => tracing::debug!(elapsed_us = elapsed.as_micros() as u64, "ok"),
        Err(e) => tracing::info!(code = ?e.code(), error = %e, "failed"),
    });
    result
}

/// One gRPC call as it reaches its handler: its deadline, and the gate's mark that the handler
/// took it (and so answers and counts it).
struct Call {
    deadline: Option<Instant>,
    handled: Option<Handled>,
}

impl Call {
    fn of<T>(request: &Request<T>) -> Self {
        Self {
            deadline: deadline::from_metadata(request.metadata()),
            handled: request.extensions().get::<Handled>().cloned(),
        }
    }

    /// Runs the RPC and converts its error into a gRPC status.
    async fn rpc<T>(
        self,
        method: &'static str,
        work: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<Response<T>, Status> {
        if let Some(handled) = &self.handled {
            handled.mark();
        }
        run(method, self.deadline, work)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}

/// The request handlers, shared by the gRPC service and the HTTP API (`http/`): validation,
/// embedding and search happen here only.
impl RetrievalService {
    /// Ranks the gallery for the request's one query.
    pub(super) async fn search(
        &self,
        mut req: proto::SearchRequest,
        deadline: Option<Instant>,
    ) -> Result<proto::SearchResponse, ServiceError> {
        let start = Instant::now();
        let core = self.core()?;
        let query = convert::take_query(&mut req)?;
        match &query {
            Query::Text(text) => self.check_text(text, "text")?,
            Query::Image(image) => self.check_image(image, "image")?,
            Query::ImageId(_) => {}
        }
        let params = convert::search_params(&req, &self.shared.limits)?;
        let by_person = convert::group_by_person(&req)?;
        let mut filter = convert::filter(req.filter.as_ref())?;
        let (query, embedded) = match query {
            Query::Text(text) => first(core.infer.embed_texts(vec![text], deadline).await?),
            Query::Image(image) => first(core.infer.embed_images(vec![image], deadline).await?),
            Query::ImageId(id) => {
                let (_, embedding) = core.gallery.image(id.clone()).await?;
                // "More like this": the query image itself would always rank first.
                filter.exclude_image_ids.push(id);
                (embedding, Embedded::default())
            }
        };
        let search_start = Instant::now();
        let (ranked, gallery_size) = core
            .gallery
            .search(query, params, filter, by_person)
            .await?;
        let search = search_start.elapsed();
        metrics::stage("search", search);
        let mut response = proto::SearchResponse {
            results: convert::results(ranked),
            timing: Some(convert::timing(&embedded, search, start.elapsed())),
            truncated: embedded.truncated.first().copied().unwrap_or(false),
            gallery_size: gallery_size as u64,
            results_cut: false,
        };
        convert::fit_response(&mut response, self.shared.limits.max_response_bytes);
        Ok(response)
    }

    /// Embeds texts.
    pub(super) async fn encode_text(
        &self,
        req: proto::EncodeTextRequest,
        deadline: Option<Instant>,
    ) -> Result<proto::EncodeResponse, ServiceError> {
        let start = Instant::now();
        let core = self.core()?;
        self.check_count(req.texts.len(), "texts")?;
        for (i, t) in req.texts.iter().enumerate() {
            self.check_text(t, &format!("texts[{i}]"))?;
        }
        let embedded = core.infer.embed_texts(req.texts, deadline).await?;
        Ok(encode_response(core, embedded, start))
    }

    /// Embeds encoded images.
    pub(super) async fn encode_image(
        &self,
        req: proto::EncodeImageRequest,
        deadline: Option<Instant>,
    ) -> Result<proto::EncodeResponse, ServiceError> {
        let start = Instant::now();
        let core = self.core()?;
        self.check_count(req.images.len(), "images")?;
        for (i, img) in req.images.iter().enumerate() {
            self.check_image(img, &format!("images[{i}]"))?;
        }
        let embedded = core.infer.embed_images(req.images, deadline).await?;
        Ok(encode_response(core, embedded, start))
    }

    async fn add_images(
        &self,
        mut stream: Streaming<proto::AddImageRequest>,
        deadline: Option<Instant>,
    ) -> Result<proto::AddImagesResponse, ServiceError> {
        let core = self.core()?;
        core.gallery.check_writable()?;
        let max = self.shared.limits.max_add_batch;
        let (mut records, mut images) = (Vec::new(), Vec::new());
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|s| stream_error(s, records.len()))?
        {
            let n = records.len();
            if n == max {
                return Err(ServiceError::InvalidArgument(format!(
                    "at most {max} images per AddImages call; split the upload"
                )));
            }
            let record = convert::record(&msg, n)?;
            // Refused before any image of the call is decoded or encoded.
            record.check_sizes().map_err(IndexError::RecordTooLarge)?;
            records.push(record);
            self.check_image(&msg.image, &format!("image #{n} ({})", msg.image_id))?;
            images.push(msg.image);
        }
        if records.is_empty() {
            let gallery_size = core.gallery.size() as u64;
            return Ok(proto::AddImagesResponse {
                added: 0,
                gallery_size,
            });
        }
        let embeddings = self.embed_in_batches(core, images, deadline).await?;
        let added = records.len() as u32;
        let gallery_size = core
            .gallery
            .add(records.into_iter().zip(embeddings).collect())
            .await?;
        tracing::info!(added, gallery_size, "images added");
        Ok(proto::AddImagesResponse {
            added,
            gallery_size: gallery_size as u64,
        })
    }

    /// Embeds an upload batch by batch, so that it never needs more queue slots than one batch.
    async fn embed_in_batches(
        &self,
        core: &Core,
        mut images: Vec<Vec<u8>>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<f32>>, ServiceError> {
        let mut embeddings = Vec::with_capacity(images.len());
        while !images.is_empty() {
            let rest = images.split_off(images.len().min(self.shared.max_inputs));
            let chunk = std::mem::replace(&mut images, rest);
            let offset = embeddings.len();
            let embedded = core
                .infer
                .embed_images(chunk, deadline)
                .await
                .map_err(|e| match e {
                    ServiceError::Image { index, source } => ServiceError::Image {
                        index: index + offset,
                        source,
                    },
                    e => e,
                })?;
            embeddings.extend(embedded.embeddings);
        }
        Ok(embeddings)
    }

    async fn remove_images(
        &self,
        req: proto::RemoveImagesRequest,
    ) -> Result<proto::RemoveImagesResponse, ServiceError> {
        let core = self.core()?;
        core.gallery.check_writable()?;
        if req.image_ids.is_empty() && req.person_ids.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "give image_ids or person_ids to remove".into(),
            ));
        }
        if req
            .image_ids
            .iter()
            .chain(&req.person_ids)
            .any(|id| id.is_empty())
        {
            return Err(ServiceError::InvalidArgument(
                "ids must not be empty".into(),
            ));
        }
        let (removed, size) = core.gallery.remove(req.image_ids, req.person_ids).await?;
        tracing::info!(removed, gallery_size = size, "images removed");
        Ok(proto::RemoveImagesResponse {
            removed: removed as u32,
            gallery_size: size as u64,
        })
    }

    /// Describes the model, gallery and limits.
    pub(super) fn info(&self) -> Result<proto::InfoResponse, ServiceError> {
        let core = self.core()?;
        let l = &self.shared.limits;
        Ok(proto::InfoResponse {
            model_name: core.model.name.clone(),
            model_config_json: core.model.config_json.clone(),
            dim: core.model.dim as u32,
            gallery_size: core.gallery.size() as u64,
            index_fingerprint: core.gallery.fingerprint(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            limits: Some(proto::Limits {
                max_top_k: l.max_top_k,
                max_batch: self.shared.max_batch as u32,
                max_queue: l.max_queue as u32,
                max_text_bytes: l.max_text_bytes as u64,
                max_image_bytes: l.max_image_bytes as u64,
                max_add_batch: l.max_add_batch as u32,
                default_top_k: l.default_top_k,
                max_ef: l.max_ef,
                max_response_bytes: l.max_response_bytes as u64,
            }),
        })
    }
}

/// A message of the AddImages stream that could not be read: over the size limit (the gate's
/// RESOURCE_EXHAUSTED), or malformed.
fn stream_error(status: Status, n: usize) -> ServiceError {
    let message = format!("cannot read image #{n} of the stream: {}", status.message());
    match status.code() {
        tonic::Code::ResourceExhausted => ServiceError::MessageTooLarge(message),
        _ => ServiceError::InvalidArgument(message),
    }
}

/// The embedding of a one-input request, with the request's timings.
fn first(embedded: Embedded) -> (Vec<f32>, Embedded) {
    let query = embedded.embeddings.first().cloned().unwrap_or_default();
    (query, embedded)
}

fn encode_response(core: &Core, embedded: Embedded, start: Instant) -> proto::EncodeResponse {
    let timing = convert::timing(&embedded, Default::default(), start.elapsed());
    proto::EncodeResponse {
        embeddings: embedded
            .embeddings
            .into_iter()
            .zip(embedded.truncated)
            .map(|(values, truncated)| proto::Embedding { values, truncated })
            .collect(),
        dim: core.model.dim as u32,
        timing: Some(timing),
    }
}

#[tonic::async_trait]
impl Retrieval for RetrievalService {
    async fn search(
        &self,
        request: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchResponse>, Status> {
        let call = Call::of(&request);
        let deadline = call.deadline;
        call.rpc("Search", self.search(request.into_inner(), deadline))
            .await
    }

    async fn encode_text(
        &self,
        request: Request<proto::EncodeTextRequest>,
    ) -> Result<Response<proto::EncodeResponse>, Status> {
        let call = Call::of(&request);
        let deadline = call.deadline;
        call.rpc(
            "EncodeText",
            self.encode_text(request.into_inner(), deadline),
        )
        .await
    }

    async fn encode_image(
        &self,
        request: Request<proto::EncodeImageRequest>,
    ) -> Result<Response<proto::EncodeResponse>, Status> {
        let call = Call::of(&request);
        let deadline = call.deadline;
        call.rpc(
            "EncodeImage",
            self.encode_image(request.into_inner(), deadline),
        )
        .await
    }

    async fn add_images(
        &self,
        request: Request<Streaming<proto::AddImageRequest>>,
    ) -> Result<Response<proto::AddImagesResponse>, Status> {
        let call = Call::of(&request);
        let deadline = call.deadline;
        call.rpc("AddImages", self.add_images(request.into_inner(), deadline))
            .await
    }

    async fn remove_images(
        &self,
        request: Request<proto::RemoveImagesRequest>,
    ) -> Result<Response<proto::RemoveImagesResponse>, Status> {
        Call::of(&request)
            .rpc("RemoveImages", self.remove_images(request.into_inner()))
            .await
    }

    async fn info(
        &self,
        request: Request<proto::InfoRequest>,
    ) -> Result<Response<proto::InfoResponse>, Status> {
        Call::of(&request).rpc("Info", async { self.info() }).await
    }
}
