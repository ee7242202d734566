//! The collection's lifecycle: connecting, creating it with its schema and HNSW index,
//! checking the model it was built with, loading and dropping it.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;

use super::client::Client;
use super::proto::common;
use super::proto::milvus as m;
use super::proto::schema::{self, DataType};
use super::rows::kv;
use super::{
    MilvusConfig, MilvusGallery, DESCRIPTION_PREFIX, FINGERPRINT_KEY, UNTIMED_WRITE_WINDOW,
    VECTOR_FIELD,
};
use crate::index::backend::GalleryBackend;
use crate::index::IndexError;

/// What opening a collection may do.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    Open,
    OpenOrCreate,
    Recreate,
}

impl MilvusGallery {
    /// Opens the gallery collection, creating it (with its HNSW index) when it does not exist.
    /// Refuses a collection built with another model or another dimension.
    pub fn open_or_create(
        config: MilvusConfig,
        fingerprint: &str,
        dim: usize,
    ) -> Result<Self, IndexError> {
        Self::open_with(config, fingerprint, dim, Mode::OpenOrCreate)
    }

    /// Opens the gallery collection, which must exist (searches, evaluation, removals).
    pub fn open(config: MilvusConfig, fingerprint: &str, dim: usize) -> Result<Self, IndexError> {
        Self::open_with(config, fingerprint, dim, Mode::Open)
    }

    /// Opens the gallery collection whatever model built it: for maintenance that never
    /// compares embeddings (removals).
    pub fn open_any(config: MilvusConfig) -> Result<Self, IndexError> {
        let mut gallery = Self::connect(config, "", 0)?;
        let (fingerprint, dim) = gallery.block_on(gallery.describe_collection())?;
        gallery.fingerprint = fingerprint;
        gallery.dim = dim;
        gallery.block_on(gallery.load())?;
        gallery.refresh_count()?;
        Ok(gallery)
    }

    /// Drops the gallery collection if it exists and creates it empty (`ivt index build`).
    pub fn recreate(
        config: MilvusConfig,
        fingerprint: &str,
        dim: usize,
    ) -> Result<Self, IndexError> {
        Self::open_with(config, fingerprint, dim, Mode::Recreate)
    }

    pub(super) fn open_with(
        config: MilvusConfig,
        fingerprint: &str,
        dim: usize,
        mode: Mode,
    ) -> Result<Self, IndexError> {
        let gallery = Self::connect(config, fingerprint, dim)?;
        gallery.block_on(gallery.ensure_collection(mode))?;
        gallery.refresh_count()?;
        Ok(gallery)
    }

    pub(super) fn connect(
        config: MilvusConfig,
        fingerprint: &str,
        dim: usize,
    ) -> Result<Self, IndexError> {
        if config.collection.is_empty()
            || !config
                .collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || config.collection.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(IndexError::InvalidParams(format!(
                "Milvus collection name `{}`: use letters, digits and underscores, not starting \
                 with a digit",
                config.collection
            )));
        }
        config.hnsw.validate().map_err(IndexError::InvalidParams)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ivt-milvus")
            .enable_all()
            .build()
            .map_err(|e| IndexError::Backend(format!("starting the Milvus client runtime: {e}")))?;
        let client = {
            let _guard = runtime.enter();
            Client::new(
                &config.uri,
                config.token.as_deref(),
                config.timeout,
                config.retries,
            )?
        };
        Ok(Self {
            runtime: Some(runtime),
            client,
            config,
            fingerprint: fingerprint.to_string(),
            dim,
            count: AtomicUsize::new(0),
            last_write: AtomicU64::new(0),
            // Writes made before this process opened the gallery (e.g. by `ivt index build`
            // a moment ago) carry no timestamp known here: read Strong until they show anyway.
            strong_until: Mutex::new(Some(Instant::now() + UNTIMED_WRITE_WINDOW)),
            writes: Mutex::new(()),
        })
    }

    /// The server's version string (e.g. "v2.3.5").
    pub fn server_version(&self) -> Result<String, IndexError> {
        let request = m::GetVersionRequest {};
        let r = self.block_on(self.client.send(
            "GetVersion",
            request,
            |mut c, req| async move { c.get_version(req).await },
        ))?;
        Ok(r.version)
    }

    /// Deletes the collection (tests and `ivt index build` replacing a gallery).
    pub fn drop_collection(&self) -> Result<(), IndexError> {
        self.block_on(self.drop_collection_async())
    }

    pub(super) async fn drop_collection_async(&self) -> Result<(), IndexError> {
        self.client
            .send(
                "DropCollection",
                m::DropCollectionRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    ..Default::default()
                },
                |mut c, req| async move { c.drop_collection(req).await },
            )
            .await?;
        Ok(())
    }

    pub(super) async fn has_collection(&self) -> Result<bool, IndexError> {
        let r = self
            .client
            .send(
                "HasCollection",
                m::HasCollectionRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    ..Default::default()
                },
                |mut c, req| async move { c.has_collection(req).await },
            )
            .await?;
        Ok(r.value)
    }

    pub(super) async fn ensure_collection(&self, mode: Mode) -> Result<(), IndexError> {
        let exists = self.has_collection().await?;
        match (exists, mode) {
            (false, Mode::Open) => {
                return Err(IndexError::Backend(format!(
                    "no collection `{}` at {}: build it with `ivt index build --gallery-backend \
                     milvus`",
                    self.config.collection,
                    self.client.uri()
                )))
            }
            (true, Mode::Open | Mode::OpenOrCreate) => self.check_collection().await?,
            (true, Mode::Recreate) => {
                tracing::info!(collection = %self.config.collection, "dropping the old collection");
                self.drop_collection_async().await?;
                self.create_collection().await?;
            }
            (false, _) => self.create_collection().await?,
        }
        self.load().await
    }

    /// Compares the collection's recorded model and dimension with ours.
    pub(super) async fn check_collection(&self) -> Result<(), IndexError> {
        let (recorded, dim) = self.describe_collection().await?;
        if recorded != self.fingerprint {
            return Err(IndexError::ModelMismatch {
                path: self.location().into(),
                index_fingerprint: recorded,
                model_fingerprint: self.fingerprint.clone(),
            });
        }
        if dim != self.dim {
            return Err(IndexError::Dimension {
                expected: dim,
                got: self.dim,
            });
        }
        Ok(())
    }

    /// The model fingerprint and embedding dimension the collection records.
    pub(super) async fn describe_collection(&self) -> Result<(String, usize), IndexError> {
        let r = self
            .client
            .send(
                "DescribeCollection",
                m::DescribeCollectionRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    ..Default::default()
                },
                |mut c, req| async move { c.describe_collection(req).await },
            )
            .await?;
        let schema = r.schema.unwrap_or_default();
        let recorded = r
            .properties
            .iter()
            .chain(&schema.properties)
            .find(|kv| kv.key == FINGERPRINT_KEY)
            .map(|kv| kv.value.clone())
            .or_else(|| {
                schema
                    .description
                    .strip_prefix(DESCRIPTION_PREFIX)
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                IndexError::Backend(format!(
                    "collection `{}` at {} was not created by ivt (no model fingerprint); pick \
                     another --milvus-collection",
                    self.config.collection,
                    self.client.uri()
                ))
            })?;
        let dim = schema
            .fields
            .iter()
            .find(|f| f.name == VECTOR_FIELD)
            .and_then(|f| f.type_params.iter().find(|kv| kv.key == "dim"))
            .and_then(|kv| kv.value.parse::<usize>().ok());
        match dim {
            Some(d) => Ok((recorded, d)),
            None => Err(IndexError::Backend(format!(
                "collection `{}` has no `{VECTOR_FIELD}` vector field",
                self.config.collection
            ))),
        }
    }

    pub(super) async fn create_collection(&self) -> Result<(), IndexError> {
        let fields = fields(self.dim);
        let properties = vec![kv(FINGERPRINT_KEY, &self.fingerprint)];
        let schema = schema::CollectionSchema {
            name: self.name(),
            description: format!("{DESCRIPTION_PREFIX}{}", self.fingerprint),
            fields,
            properties: properties.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let level = self.config.consistency.proto();
        self.client
            .send(
                "CreateCollection",
                m::CreateCollectionRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    schema,
                    shards_num: 1,
                    consistency_level: level,
                    properties,
                    ..Default::default()
                },
                |mut c, req| async move { c.create_collection(req).await },
            )
            .await?;
        let h = &self.config.hnsw;
        let params =
            serde_json::json!({"M": h.max_nb_connection, "efConstruction": h.ef_construction});
        let extra = vec![
            kv("index_type", "HNSW"),
            kv("metric_type", "IP"),
            kv("params", params),
        ];
        self.client
            .send(
                "CreateIndex",
                m::CreateIndexRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    field_name: VECTOR_FIELD.into(),
                    extra_params: extra,
                    index_name: format!("{VECTOR_FIELD}_hnsw"),
                    ..Default::default()
                },
                |mut c, req| async move { c.create_index(req).await },
            )
            .await?;
        tracing::info!(collection = %self.config.collection, uri = %self.client.uri(),
            dim = self.dim, "created Milvus collection");
        Ok(())
    }

    /// Loads the collection into the query nodes (unless it is) and waits until it is
    /// searchable.
    pub(super) async fn load(&self) -> Result<(), IndexError> {
        if self.load_state().await? == Some(common::LoadState::Loaded) {
            return Ok(());
        }
        self.client
            .send(
                "LoadCollection",
                m::LoadCollectionRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    ..Default::default()
                },
                |mut c, req| async move { c.load_collection(req).await },
            )
            .await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match self.load_state().await? {
                // Servers without GetLoadState load synchronously.
                None | Some(common::LoadState::Loaded) => return Ok(()),
                Some(_) if Instant::now() > deadline => {
                    return Err(IndexError::Backend(format!(
                        "collection `{}` did not finish loading in 300 s",
                        self.config.collection
                    )))
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The collection's load state; `None` when the server cannot tell.
    pub(super) async fn load_state(&self) -> Result<Option<common::LoadState>, IndexError> {
        let state = self
            .client
            .send(
                "GetLoadState",
                m::GetLoadStateRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    ..Default::default()
                },
                |mut c, req| async move { c.get_load_state(req).await },
            )
            .await;
        match state {
            Ok(s) => Ok(common::LoadState::try_from(s.state).ok()),
            Err(IndexError::Backend(e)) if e.contains("Unimplemented") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The collection's fields (see the table in the module documentation).
fn fields(dim: usize) -> Vec<schema::FieldSchema> {
    let varchar = |name: &str, max: usize, primary: bool| schema::FieldSchema {
        name: name.into(),
        is_primary_key: primary,
        data_type: DataType::VarChar as i32,
        type_params: vec![kv("max_length", max)],
        ..Default::default()
    };
    vec![
        varchar("image_id", 1024, true),
        varchar("person_id", 512, false),
        varchar("camera_id", 512, false),
        schema::FieldSchema {
            name: "captured_ms".into(),
            data_type: DataType::Int64 as i32,
            ..Default::default()
        },
        varchar("path", 4096, false),
        schema::FieldSchema {
            name: "attributes".into(),
            data_type: DataType::Json as i32,
            ..Default::default()
        },
        schema::FieldSchema {
            name: VECTOR_FIELD.into(),
            data_type: DataType::FloatVector as i32,
            type_params: vec![kv("dim", dim)],
            ..Default::default()
        },
    ]
}
