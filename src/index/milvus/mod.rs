//! Milvus as the gallery backend, for galleries no single machine holds.
//!
//! One collection per gallery:
//!
//! | field | type | |
//! |---|---|---|
//! | `image_id` | VARCHAR(1024) | primary key |
//! | `person_id` | VARCHAR(512) | results are grouped by it; excluded persons filter on it |
//! | `camera_id` | VARCHAR(512) | "" when unknown; camera filters |
//! | `captured_ms` | INT64 | Unix ms, [`NO_TIME`](expr::NO_TIME) when unknown; time windows |
//! | `path` | VARCHAR(4096) | "" when none |
//! | `attributes` | JSON | the free attributes |
//! | `embedding` | FLOAT_VECTOR(dim) | L2-normalised; HNSW, inner product (= cosine) |
//!
//! The collection records the model fingerprint (property `ivt.model_fingerprint`, and in its
//! description); opening it with another model is refused. Writes are upserts by image id, so a
//! retried batch never duplicates rows. Reads use the configured [`Consistency`]: Session by
//! default (a search sees every change this process made; changes made through other replicas
//! show within Milvus' time tick), Strong on request.

mod client;
mod expr;
mod proto;
mod rows;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;

use self::client::Client;
use self::expr::{filter_expr, is_in};
use self::proto::common::{self, KeyValuePair};
use self::proto::milvus as m;
use self::proto::schema::{self, DataType};
use self::rows::{columns, floats, hits, kv, longs, records, strings};
use super::backend::{missing, GalleryBackend};
use super::search::hits::persons_by_widening;
use super::validate::{check_new_items, check_search};
use super::{HnswParams, ImageHit, ImageRecord, IndexError, PersonHit, SearchFilter, SearchParams};

/// Collection property holding the model fingerprint.
const FINGERPRINT_KEY: &str = "ivt.model_fingerprint";
/// Prefix of the collection description (which also carries the fingerprint, for servers that
/// do not keep properties).
const DESCRIPTION_PREFIX: &str = "ivt gallery; model fingerprint ";
const VECTOR_FIELD: &str = "embedding";
const OUTPUT_FIELDS: [&str; 5] = [
    "person_id",
    "camera_id",
    "captured_ms",
    "path",
    "attributes",
];
/// Milvus' largest `topk` (and query `limit`).
const MAX_TOPK: usize = 16_384;
/// How long Session reads stay Strong after a write without a timestamp.
const UNTIMED_WRITE_WINDOW: Duration = Duration::from_secs(5);
/// Ids per `in [...]` query, keeping expressions and responses small.
const IDS_PER_QUERY: usize = 1_000;

/// Milvus read consistency (see Milvus' "Consistency" documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Reads see every write, from any client, that returned before them. Costs a wait for
    /// Milvus' time tick (about 200 ms per read on a default standalone server).
    Strong,
    /// Reads see every write this process made (read-your-writes; ivt passes its last write's
    /// timestamp as the guarantee), and other clients' writes within Milvus' time tick (reads
    /// in the first seconds after opening are Strong, so a gallery built just before is seen
    /// whole). The default.
    Session,
    /// Reads may miss writes of the last few seconds; faster on busy clusters.
    Bounded,
    /// No guarantee; fastest.
    Eventually,
}

impl Consistency {
    fn proto(self) -> i32 {
        (match self {
            Self::Strong => common::ConsistencyLevel::Strong,
            Self::Session => common::ConsistencyLevel::Session,
            Self::Bounded => common::ConsistencyLevel::Bounded,
            Self::Eventually => common::ConsistencyLevel::Eventually,
        }) as i32
    }
}

/// Where the Milvus gallery lives and how to talk to it.
#[derive(Debug, Clone)]
pub struct MilvusConfig {
    /// Server address: `http://host:19530`, `https://...`, or `host:port`.
    pub uri: String,
    /// `user:password` or an API key (sent base64-encoded as Milvus expects), if auth is on.
    pub token: Option<String>,
    /// Database (Milvus 2.2.9+); `None` = the server's default.
    pub database: Option<String>,
    /// Collection holding this gallery.
    pub collection: String,
    /// Read consistency of searches and queries.
    pub consistency: Consistency,
    /// HNSW parameters used when the collection is created (`ef_search` also as the default
    /// search breadth).
    pub hnsw: HnswParams,
    /// Rows per insert request while bulk loading.
    pub insert_batch: usize,
    /// Retries of a failed request (with exponential backoff) before giving up.
    pub retries: u32,
    /// Deadline of one request.
    pub timeout: Duration,
}

impl MilvusConfig {
    /// Defaults for everything but the address and collection.
    pub fn new(uri: impl Into<String>, collection: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            token: None,
            database: None,
            collection: collection.into(),
            consistency: Consistency::Session,
            hnsw: HnswParams::default(),
            insert_batch: 1_000,
            retries: 4,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What opening a collection may do.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Open,
    OpenOrCreate,
    Recreate,
}

/// A gallery kept in a Milvus collection. The methods block: each drives the request on the
/// gallery's own small runtime, so it works from CLI code and from the service's blocking pool.
pub struct MilvusGallery {
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
    config: MilvusConfig,
    fingerprint: String,
    dim: usize,
    /// Live images, refreshed after every change and health check.
    count: AtomicUsize,
    /// Milvus timestamp of this process's last write: the guarantee of Session reads.
    last_write: AtomicU64,
    /// Until when Session reads are Strong, after a write the server did not timestamp.
    strong_until: Mutex<Option<Instant>>,
    /// Serialises this process's changes, so the duplicate check before an insert holds.
    writes: Mutex<()>,
}

impl Drop for MilvusGallery {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code: let it wind down alone.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
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

    /// Which of `ids` the collection holds.
    pub fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>, IndexError> {
        self.block_on(self.present_images(ids))
    }

    /// Drops the gallery collection if it exists and creates it empty (`ivt index build`).
    pub fn recreate(
        config: MilvusConfig,
        fingerprint: &str,
        dim: usize,
    ) -> Result<Self, IndexError> {
        Self::open_with(config, fingerprint, dim, Mode::Recreate)
    }

    fn open_with(
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

    fn connect(config: MilvusConfig, fingerprint: &str, dim: usize) -> Result<Self, IndexError> {
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

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            // Only `drop` takes the runtime.
            None => unreachable!("Milvus runtime used after drop"),
        }
    }

    /// Consistency level and guarantee timestamp of a read.
    fn read_guarantee(&self) -> (i32, u64) {
        if self.config.consistency != Consistency::Session {
            return (self.config.consistency.proto(), 0);
        }
        let untimed = self
            .strong_until
            .lock()
            .map(|t| t.is_some_and(|t| Instant::now() < t))
            .unwrap_or(true);
        if untimed {
            return (common::ConsistencyLevel::Strong as i32, 0);
        }
        (
            common::ConsistencyLevel::Session as i32,
            self.last_write.load(Ordering::Acquire),
        )
    }

    fn wrote(&self, r: &m::MutationResult) {
        if r.timestamp > 0 {
            self.last_write.fetch_max(r.timestamp, Ordering::AcqRel);
        } else if let Ok(mut t) = self.strong_until.lock() {
            // Some servers (Milvus 2.3 deletes) return no timestamp: read Strong for a while,
            // far longer than the time tick after which every reader sees the change.
            *t = Some(Instant::now() + UNTIMED_WRITE_WINDOW);
        }
    }

    fn db(&self) -> String {
        self.config.database.clone().unwrap_or_default()
    }

    fn name(&self) -> String {
        self.config.collection.clone()
    }

    /// The server's version string (e.g. "v2.3.5").
    pub fn server_version(&self) -> Result<String, IndexError> {
        let r = self.block_on(self.client.call("GetVersion", |mut c| async move {
            c.get_version(m::GetVersionRequest {}).await
        }))?;
        Ok(r.version)
    }

    /// Deletes the collection (tests and `ivt index build` replacing a gallery).
    pub fn drop_collection(&self) -> Result<(), IndexError> {
        self.block_on(self.drop_collection_async())
    }

    async fn drop_collection_async(&self) -> Result<(), IndexError> {
        let (db, name) = (self.db(), self.name());
        self.client
            .call("DropCollection", |mut c| {
                let req = m::DropCollectionRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    ..Default::default()
                };
                async move { c.drop_collection(req).await }
            })
            .await?;
        Ok(())
    }

    async fn has_collection(&self) -> Result<bool, IndexError> {
        let (db, name) = (self.db(), self.name());
        let r = self
            .client
            .call("HasCollection", |mut c| {
                let req = m::HasCollectionRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    ..Default::default()
                };
                async move { c.has_collection(req).await }
            })
            .await?;
        Ok(r.value)
    }

    async fn ensure_collection(&self, mode: Mode) -> Result<(), IndexError> {
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
    async fn check_collection(&self) -> Result<(), IndexError> {
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
    async fn describe_collection(&self) -> Result<(String, usize), IndexError> {
        let (db, name) = (self.db(), self.name());
        let r = self
            .client
            .call("DescribeCollection", |mut c| {
                let req = m::DescribeCollectionRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    ..Default::default()
                };
                async move { c.describe_collection(req).await }
            })
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

    async fn create_collection(&self) -> Result<(), IndexError> {
        let varchar = |name: &str, max: usize, primary: bool| schema::FieldSchema {
            name: name.into(),
            is_primary_key: primary,
            data_type: DataType::VarChar as i32,
            type_params: vec![kv("max_length", max)],
            ..Default::default()
        };
        let fields = vec![
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
                type_params: vec![kv("dim", self.dim)],
                ..Default::default()
            },
        ];
        let properties = vec![kv(FINGERPRINT_KEY, &self.fingerprint)];
        let schema = schema::CollectionSchema {
            name: self.name(),
            description: format!("{DESCRIPTION_PREFIX}{}", self.fingerprint),
            fields,
            properties: properties.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let (db, name, level) = (self.db(), self.name(), self.config.consistency.proto());
        self.client
            .call("CreateCollection", |mut c| {
                let req = m::CreateCollectionRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    schema: schema.clone(),
                    shards_num: 1,
                    consistency_level: level,
                    properties: properties.clone(),
                    ..Default::default()
                };
                async move { c.create_collection(req).await }
            })
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
            .call("CreateIndex", |mut c| {
                let req = m::CreateIndexRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    field_name: VECTOR_FIELD.into(),
                    extra_params: extra.clone(),
                    index_name: format!("{VECTOR_FIELD}_hnsw"),
                    ..Default::default()
                };
                async move { c.create_index(req).await }
            })
            .await?;
        tracing::info!(collection = %self.config.collection, uri = %self.client.uri(),
            dim = self.dim, "created Milvus collection");
        Ok(())
    }

    /// Loads the collection into the query nodes (unless it is) and waits until it is
    /// searchable.
    async fn load(&self) -> Result<(), IndexError> {
        if self.load_state().await? == Some(common::LoadState::Loaded) {
            return Ok(());
        }
        let (db, name) = (self.db(), self.name());
        self.client
            .call("LoadCollection", |mut c| {
                let req = m::LoadCollectionRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    ..Default::default()
                };
                async move { c.load_collection(req).await }
            })
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
    async fn load_state(&self) -> Result<Option<common::LoadState>, IndexError> {
        let (db, name) = (self.db(), self.name());
        let state = self
            .client
            .call("GetLoadState", |mut c| {
                let req = m::GetLoadStateRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    ..Default::default()
                };
                async move { c.get_load_state(req).await }
            })
            .await;
        match state {
            Ok(s) => Ok(common::LoadState::try_from(s.state).ok()),
            Err(IndexError::Backend(e)) if e.contains("Unimplemented") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Re-counts the live images (a `count(*)` query).
    fn refresh_count(&self) -> Result<usize, IndexError> {
        let n = self.block_on(self.count_where(""))?;
        self.count.store(n, Ordering::Relaxed);
        Ok(n)
    }

    async fn query(
        &self,
        what: &str,
        expr: String,
        output: Vec<String>,
        limit: Option<usize>,
    ) -> Result<Vec<schema::FieldData>, IndexError> {
        let (db, name) = (self.db(), self.name());
        let (level, guarantee) = self.read_guarantee();
        let params: Vec<KeyValuePair> = limit.map(|l| vec![kv("limit", l)]).unwrap_or_default();
        let r = self
            .client
            .call(what, |mut c| {
                let req = m::QueryRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    expr: expr.clone(),
                    output_fields: output.clone(),
                    query_params: params.clone(),
                    consistency_level: level,
                    guarantee_timestamp: guarantee,
                    ..Default::default()
                };
                async move { c.query(req).await }
            })
            .await?;
        Ok(r.fields_data)
    }

    async fn count_where(&self, expr: &str) -> Result<usize, IndexError> {
        let fields = self
            .query("count", expr.to_string(), vec!["count(*)".into()], None)
            .await?;
        fields
            .iter()
            .find(|f| f.field_name == "count(*)")
            .and_then(|f| longs(f).first().copied())
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| IndexError::Backend("Milvus answered count(*) without a count".into()))
    }

    /// The values of the string column `field` of rows matching `expr` (at most `MAX_TOPK`).
    async fn strings_where(&self, expr: String, field: &str) -> Result<Vec<String>, IndexError> {
        let fields = self
            .query("query", expr, vec![field.to_string()], Some(MAX_TOPK))
            .await?;
        Ok(fields
            .iter()
            .find(|f| f.field_name == field)
            .map(strings)
            .unwrap_or_default())
    }

    /// The record and stored embedding of image `image_id`, if present.
    async fn image_row(
        &self,
        image_id: &str,
    ) -> Result<Option<(ImageRecord, Vec<f32>)>, IndexError> {
        let mut output: Vec<String> = OUTPUT_FIELDS.iter().map(|s| s.to_string()).collect();
        output.extend(["image_id".to_string(), VECTOR_FIELD.to_string()]);
        let expr = is_in("image_id", &[image_id.to_string()]);
        let fields = self.query("query", expr, output, Some(1)).await?;
        let ids = fields
            .iter()
            .find(|f| f.field_name == "image_id")
            .map(strings)
            .unwrap_or_default();
        let Some(id) = ids.into_iter().next() else {
            return Ok(None);
        };
        let vector = fields
            .iter()
            .find(|f| f.field_name == VECTOR_FIELD)
            .map(floats)
            .unwrap_or_default();
        if vector.len() < self.dim {
            return Err(IndexError::Backend(format!(
                "Milvus returned image `{id}` with {} embedding values; expected {}",
                vector.len(),
                self.dim
            )));
        }
        let record = records(vec![id], &fields).into_iter().next();
        Ok(record.map(|r| (r, vector[..self.dim].to_vec())))
    }

    /// Which of `ids` are in the collection.
    async fn present_images(&self, ids: &[String]) -> Result<HashSet<String>, IndexError> {
        let mut present = HashSet::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            present.extend(
                self.strings_where(is_in("image_id", chunk), "image_id")
                    .await?,
            );
        }
        Ok(present)
    }

    /// Which of `persons` have at least one image.
    async fn present_persons(&self, persons: &[String]) -> Result<HashSet<String>, IndexError> {
        let mut present = HashSet::new();
        for chunk in persons.chunks(IDS_PER_QUERY) {
            let found = self
                .strings_where(is_in("person_id", chunk), "person_id")
                .await?;
            let truncated = found.len() >= MAX_TOPK;
            present.extend(found);
            if truncated {
                // The row limit may have hidden some persons: ask for the rest one by one.
                let unseen: Vec<&String> = chunk.iter().filter(|p| !present.contains(*p)).collect();
                for p in unseen {
                    if self
                        .count_where(&is_in("person_id", std::slice::from_ref(p)))
                        .await?
                        > 0
                    {
                        present.insert(p.clone());
                    }
                }
            }
        }
        Ok(present)
    }

    async fn upsert(&self, items: &[(ImageRecord, Vec<f32>)]) -> Result<(), IndexError> {
        let fields = columns(items, self.dim);
        let (db, name) = (self.db(), self.name());
        let rows = items.len() as u32;
        let r = self
            .client
            .call("Upsert", |mut c| {
                let req = m::UpsertRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    fields_data: fields.clone(),
                    num_rows: rows,
                    ..Default::default()
                };
                async move { c.upsert(req).await }
            })
            .await?;
        self.wrote(&r);
        Ok(())
    }

    async fn delete_where(&self, expr: String) -> Result<(), IndexError> {
        let (db, name) = (self.db(), self.name());
        let r = self
            .client
            .call("Delete", |mut c| {
                let req = m::DeleteRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    expr: expr.clone(),
                    consistency_level: common::ConsistencyLevel::Strong as i32,
                    ..Default::default()
                };
                async move { c.delete(req).await }
            })
            .await?;
        self.wrote(&r);
        Ok(())
    }

    /// The best `k` images for `query` passing `expr`.
    async fn search_k(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        expr: &str,
    ) -> Result<Vec<ImageHit>, IndexError> {
        let bytes: Vec<u8> = query.iter().flat_map(|x| x.to_le_bytes()).collect();
        let group = common::PlaceholderGroup {
            placeholders: vec![common::PlaceholderValue {
                tag: "$0".into(),
                r#type: common::PlaceholderType::FloatVector as i32,
                values: vec![bytes],
            }],
        }
        .encode_to_vec();
        let params = vec![
            kv("anns_field", VECTOR_FIELD),
            kv("topk", k),
            kv("metric_type", "IP"),
            kv("params", serde_json::json!({ "ef": ef.max(k) })),
            kv("round_decimal", -1),
            kv("offset", 0),
        ];
        let (db, name) = (self.db(), self.name());
        let (level, guarantee) = self.read_guarantee();
        let output: Vec<String> = OUTPUT_FIELDS.iter().map(|s| s.to_string()).collect();
        let r = self
            .client
            .call("Search", |mut c| {
                let req = m::SearchRequest {
                    db_name: db.clone(),
                    collection_name: name.clone(),
                    dsl: expr.to_string(),
                    placeholder_group: group.clone(),
                    dsl_type: common::DslType::BoolExprV1 as i32,
                    output_fields: output.clone(),
                    search_params: params.clone(),
                    nq: 1,
                    consistency_level: level,
                    guarantee_timestamp: guarantee,
                    ..Default::default()
                };
                async move { c.search(req).await }
            })
            .await?;
        hits(r.results.unwrap_or_default())
    }

    fn check_query(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<(), IndexError> {
        check_search(query, self.dim, params, filter)?;
        if params.top_k > MAX_TOPK {
            return Err(IndexError::InvalidParams(format!(
                "top_k {} exceeds Milvus' limit of {MAX_TOPK}",
                params.top_k
            )));
        }
        Ok(())
    }

    fn ef(&self, params: &SearchParams, k: usize) -> usize {
        // Milvus' HNSW accepts ef up to 32768, and at least topk. `exact` has no Milvus
        // equivalent short of a FLAT index: it searches as wide as Milvus allows.
        let ef = if params.exact {
            32_768
        } else {
            params.ef.unwrap_or(self.config.hnsw.ef_search)
        };
        ef.max(k).min(32_768)
    }
}

impl GalleryBackend for MilvusGallery {
    fn kind(&self) -> &'static str {
        "milvus"
    }

    fn location(&self) -> String {
        let host = self
            .client
            .uri()
            .split("://")
            .nth(1)
            .unwrap_or(self.client.uri())
            .to_string();
        format!("milvus://{host}/{}", self.config.collection)
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn default_ef(&self) -> usize {
        self.config.hnsw.ef_search
    }

    fn image(&self, image_id: &str) -> Result<Option<(ImageRecord, Vec<f32>)>, IndexError> {
        self.block_on(self.image_row(image_id))
    }

    fn search_images(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<ImageHit>, IndexError> {
        self.check_query(query, params, filter)?;
        let expr = filter_expr(filter);
        self.block_on(self.search_k(query, params.top_k, self.ef(params, params.top_k), &expr))
    }

    fn search_persons(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &SearchFilter,
    ) -> Result<Vec<PersonHit>, IndexError> {
        self.check_query(query, params, filter)?;
        let expr = filter_expr(filter);
        // The embedded index's widening, step for step, so both rank persons alike.
        persons_by_widening(params.top_k, self.len().max(1), MAX_TOPK, |k| {
            self.block_on(self.search_k(query, k, self.ef(params, k), &expr))
        })
    }

    fn add(&self, items: Vec<(ImageRecord, Vec<f32>)>) -> Result<usize, IndexError> {
        let _writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        // Presence in the collection is checked below, in one query for the whole batch.
        check_new_items(&items, self.dim, |_| false)?;
        if items.is_empty() {
            return Ok(self.len());
        }
        let ids: Vec<String> = items.iter().map(|(r, _)| r.image_id.clone()).collect();
        self.block_on(async {
            if let Some(dup) = self.present_images(&ids).await?.into_iter().next() {
                return Err(IndexError::DuplicateImageId(dup));
            }
            for chunk in items.chunks(self.config.insert_batch.max(1)) {
                self.upsert(chunk).await?;
            }
            Ok(())
        })?;
        Ok(self.count.fetch_add(items.len(), Ordering::Relaxed) + items.len())
    }

    fn remove(
        &self,
        image_ids: &[String],
        person_ids: &[String],
    ) -> Result<(usize, usize), IndexError> {
        let _writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if image_ids.is_empty() && person_ids.is_empty() {
            return Ok((0, self.len()));
        }
        let removed = self.block_on(async {
            let images = self.present_images(image_ids).await?;
            let persons = self.present_persons(person_ids).await?;
            let absent = |ids: &[String], present: &HashSet<String>| -> Vec<String> {
                ids.iter()
                    .filter(|i| !present.contains(*i))
                    .cloned()
                    .collect()
            };
            missing(&absent(image_ids, &images), &absent(person_ids, &persons))?;
            let mut clauses = Vec::new();
            for chunk in image_ids.chunks(IDS_PER_QUERY) {
                clauses.push(is_in("image_id", chunk));
            }
            for chunk in person_ids.chunks(IDS_PER_QUERY) {
                clauses.push(is_in("person_id", chunk));
            }
            let expr = clauses
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" or ");
            let n = self.count_where(&expr).await?;
            // Deletes go by primary key, which every Milvus version accepts: person ids are
            // resolved to their image ids first (a query returns at most MAX_TOPK rows, so a
            // person with more images takes several rounds).
            for chunk in image_ids.chunks(IDS_PER_QUERY) {
                self.delete_where(is_in("image_id", chunk)).await?;
            }
            for chunk in person_ids.chunks(IDS_PER_QUERY) {
                loop {
                    let ids = self
                        .strings_where(is_in("person_id", chunk), "image_id")
                        .await?;
                    for c in ids.chunks(IDS_PER_QUERY) {
                        self.delete_where(is_in("image_id", c)).await?;
                    }
                    if ids.len() < MAX_TOPK {
                        break;
                    }
                }
            }
            Ok::<usize, IndexError>(n)
        })?;
        let size = self.refresh_count()?;
        Ok((removed, size))
    }

    fn persist(&self) -> Result<(), IndexError> {
        let (db, name) = (self.db(), self.name());
        self.block_on(self.client.call("Flush", |mut c| {
            let req = m::FlushRequest {
                db_name: db.clone(),
                collection_names: vec![name.clone()],
                ..Default::default()
            };
            async move { c.flush(req).await }
        }))?;
        Ok(())
    }

    fn check_health(&self) -> Result<(), IndexError> {
        self.block_on(async {
            if !self.has_collection().await? {
                return Err(IndexError::Unavailable(format!(
                    "collection `{}` no longer exists at {}",
                    self.config.collection,
                    self.client.uri()
                )));
            }
            // A restarted server comes back with the collection released.
            self.load().await
        })?;
        self.refresh_count().map(|_| ())
    }
}
