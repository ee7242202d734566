//! The service's error type and its one conversion into a gRPC status.

use tonic::{Code, Status};

use crate::image::ImageError;
use crate::index::IndexError;
use crate::model::ModelError;
use crate::text::TextError;

/// Everything that can go wrong serving a request or starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; the message says which field and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// A text the tokenizer rejects (e.g. empty).
    #[error("invalid text: {0}")]
    Text(#[from] TextError),
    /// An image that cannot be decoded or is too large.
    #[error("invalid image #{index}: {source}")]
    Image {
        /// Position of the image in the request.
        index: usize,
        /// What is wrong with it.
        source: ImageError,
    },
    /// A gallery image the request names does not exist (or has no readable file).
    #[error("not found: {0}")]
    NotFound(String),
    /// The admission queue is full; the client should back off and retry.
    #[error("server overloaded: {queued} inputs queued (limit {limit}); retry with backoff")]
    Overloaded {
        /// Inputs admitted when this request arrived.
        queued: usize,
        /// The configured queue limit.
        limit: usize,
    },
    /// Too many pixels are being decoded for other requests; the client should back off.
    #[error(
        "server busy decoding images: this call needs {pixels} pixels of a budget of {limit} \
         being decoded at once; retry with backoff"
    )]
    DecodeBusy {
        /// Pixels of this call's images.
        pixels: u64,
        /// The decode budget (`--max-decode-pixels`).
        limit: u64,
    },
    /// A request message (gRPC) or body (HTTP) over its method's size limit; the message names
    /// the limit.
    #[error("{0}")]
    MessageTooLarge(String),
    /// The client's deadline passed before the work was done.
    #[error("deadline exceeded while {0}")]
    DeadlineExceeded(&'static str),
    /// The model or index is still loading.
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// The server was started with `--read-only` and refuses changes to the gallery.
    #[error(
        "this server is read-only (--read-only): send AddImages and RemoveImages to the \
         writing replica"
    )]
    ReadOnly,
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
    /// Missing or wrong API key.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The model failed on valid input.
    #[error("model error: {0}")]
    Model(#[from] ModelError),
    /// The gallery index refused or failed.
    #[error("index error: {0}")]
    Index(#[from] IndexError),
    /// Start-up or I/O failure (bind, TLS files, metrics exporter).
    #[error("{0}")]
    Startup(String),
    /// A bug or an unexpected state (poisoned lock, dead model thread).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// The gRPC code for this error: the service's one code table. Every match below names each
    /// variant: a new error (here or in the layers below) must be placed as the client's fault or
    /// the server's before this compiles, instead of silently becoming INTERNAL.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) | Self::Image { .. } => Code::InvalidArgument,
            Self::Text(e) => text_code(e),
            Self::Model(e) => model_code(e),
            Self::NotFound(_) => Code::NotFound,
            Self::Overloaded { .. } | Self::DecodeBusy { .. } | Self::MessageTooLarge(_) => {
                Code::ResourceExhausted
            }
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::NotReady(_) | Self::ShuttingDown => Code::Unavailable,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::ReadOnly => Code::FailedPrecondition,
            Self::Index(e) => index_code(e),
            Self::Startup(_) | Self::Internal(_) => Code::Internal,
        }
    }
}

/// A text the tokenizer refuses is the client's; a tokenizer that does not load is the server's.
fn text_code(e: &TextError) -> Code {
    match e {
        TextError::Empty | TextError::Tokenize(_) => Code::InvalidArgument,
        TextError::Load { .. } => Code::Internal,
    }
}

/// Only a refused text reaches the model from a request; the rest is the model's (the server's)
/// fault: files, config, device, tensors.
fn model_code(e: &ModelError) -> Code {
    match e {
        ModelError::Text(e) => text_code(e),
        ModelError::NotFound(_)
        | ModelError::NoDemo(_)
        | ModelError::NoWeights(_)
        | ModelError::NoConfig(_)
        | ModelError::Config { .. }
        | ModelError::Checkpoint { .. }
        | ModelError::MissingTensor(_)
        | ModelError::Shape { .. }
        | ModelError::Device(_)
        | ModelError::Candle(_)
        | ModelError::Io { .. } => Code::Internal,
    }
}

/// Index errors a caller can cause map to client codes; the rest are the server's fault (a
/// missing or corrupt index directory is not the client's `NOT_FOUND`).
fn index_code(e: &IndexError) -> Code {
    match e {
        IndexError::DuplicateImageId(_) => Code::AlreadyExists,
        IndexError::Missing(_) => Code::NotFound,
        IndexError::Unavailable(_) => Code::Unavailable,
        IndexError::ReadOnly(_) => Code::FailedPrecondition,
        IndexError::InvalidFilter(_)
        | IndexError::InvalidRecord(_)
        | IndexError::InvalidParams(_) => Code::InvalidArgument,
        // The server's own state: its files, graph, model and backend. `Dimension` and
        // `NonFinite` come from the server's encoder, never from a request.
        IndexError::NotFound(_)
        | IndexError::AlreadyExists(_)
        | IndexError::Corrupt { .. }
        | IndexError::ModelMismatch { .. }
        | IndexError::FormatVersion { .. }
        | IndexError::Dimension { .. }
        | IndexError::NonFinite
        | IndexError::Graph { .. }
        | IndexError::Image { .. }
        | IndexError::Encode(_)
        | IndexError::Backend(_)
        | IndexError::Locked { .. }
        | IndexError::Io { .. } => Code::Internal,
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_get_client_codes_and_server_faults_internal() {
        let cases: Vec<(ServiceError, Code)> = vec![
            (
                ServiceError::InvalidArgument("x".into()),
                Code::InvalidArgument,
            ),
            (ServiceError::Text(TextError::Empty), Code::InvalidArgument),
            (
                ServiceError::Model(ModelError::Text(TextError::Empty)),
                Code::InvalidArgument,
            ),
            (
                ServiceError::Image {
                    index: 0,
                    source: ImageError::UnknownFormat,
                },
                Code::InvalidArgument,
            ),
            (ServiceError::NotFound("x".into()), Code::NotFound),
            (
                ServiceError::Overloaded {
                    queued: 1,
                    limit: 1,
                },
                Code::ResourceExhausted,
            ),
            (
                ServiceError::MessageTooLarge("x".into()),
                Code::ResourceExhausted,
            ),
            (ServiceError::DeadlineExceeded("x"), Code::DeadlineExceeded),
            (ServiceError::NotReady("x"), Code::Unavailable),
            (ServiceError::ShuttingDown, Code::Unavailable),
            (ServiceError::Unauthenticated("x"), Code::Unauthenticated),
            (ServiceError::ReadOnly, Code::FailedPrecondition),
            (
                IndexError::ReadOnly("/idx".into()).into(),
                Code::FailedPrecondition,
            ),
            (
                IndexError::DuplicateImageId("x".into()).into(),
                Code::AlreadyExists,
            ),
            (
                IndexError::InvalidFilter("x".into()).into(),
                Code::InvalidArgument,
            ),
            (IndexError::NotFound("/idx".into()).into(), Code::Internal),
            (IndexError::Missing("x".into()).into(), Code::NotFound),
            (
                IndexError::Unavailable("milvus down".into()).into(),
                Code::Unavailable,
            ),
            (IndexError::Backend("x".into()).into(), Code::Internal),
            (
                IndexError::Dimension {
                    expected: 2,
                    got: 3,
                }
                .into(),
                Code::Internal,
            ),
            (ServiceError::Internal("x".into()), Code::Internal),
        ];
        for (e, code) in cases {
            let msg = e.to_string();
            let status = Status::from(e);
            assert_eq!(status.code(), code, "{msg}");
            assert_eq!(status.message(), msg);
        }
    }
}
