//! The data requests of a [`MilvusGallery`]: queries, counts, upserts, deletes and searches.

use std::collections::HashSet;

use prost::Message;

use super::expr::is_in;
use super::proto::common::{self, KeyValuePair};
use super::proto::milvus as m;
use super::proto::schema;
use super::rows::{columns, floats, hits, kv, longs, records, strings};
use super::{MilvusGallery, IDS_PER_QUERY, MAX_TOPK, OUTPUT_FIELDS, VECTOR_FIELD};
use crate::index::validate::check_search;
use crate::index::{ImageHit, ImageRecord, IndexError, SearchFilter, SearchParams};

impl MilvusGallery {
    pub(super) async fn query(
        &self,
        what: &str,
        expr: String,
        output: Vec<String>,
        limit: Option<usize>,
    ) -> Result<Vec<schema::FieldData>, IndexError> {
        let (level, guarantee) = self.read_guarantee();
        let params: Vec<KeyValuePair> = limit.map(|l| vec![kv("limit", l)]).unwrap_or_default();
        let r = self
            .client
            .send(
                what,
                m::QueryRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    expr,
                    output_fields: output,
                    query_params: params,
                    consistency_level: level,
                    guarantee_timestamp: guarantee,
                    ..Default::default()
                },
                |mut c, req| async move { c.query(req).await },
            )
            .await?;
        Ok(r.fields_data)
    }

    pub(super) async fn count_where(&self, expr: &str) -> Result<usize, IndexError> {
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
    pub(super) async fn strings_where(
        &self,
        expr: String,
        field: &str,
    ) -> Result<Vec<String>, IndexError> {
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
    pub(super) async fn image_row(
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
    pub(super) async fn present_images(
        &self,
        ids: &[String],
    ) -> Result<HashSet<String>, IndexError> {
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
    pub(super) async fn present_persons(
        &self,
        persons: &[String],
    ) -> Result<HashSet<String>, IndexError> {
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

    pub(super) async fn upsert(&self, items: &[(ImageRecord, Vec<f32>)]) -> Result<(), IndexError> {
        let fields = columns(items, self.dim);
        let rows = items.len() as u32;
        let r = self
            .client
            .send(
                "Upsert",
                m::UpsertRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    fields_data: fields,
                    num_rows: rows,
                    ..Default::default()
                },
                |mut c, req| async move { c.upsert(req).await },
            )
            .await?;
        self.wrote(&r);
        Ok(())
    }

    pub(super) async fn delete_where(&self, expr: String) -> Result<(), IndexError> {
        let r = self
            .client
            .send(
                "Delete",
                m::DeleteRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    expr,
                    consistency_level: common::ConsistencyLevel::Strong as i32,
                    ..Default::default()
                },
                |mut c, req| async move { c.delete(req).await },
            )
            .await?;
        self.wrote(&r);
        Ok(())
    }

    /// The best `k` images for `query` passing `expr`.
    pub(super) async fn search_k(
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
        let (level, guarantee) = self.read_guarantee();
        let output: Vec<String> = OUTPUT_FIELDS.iter().map(|s| s.to_string()).collect();
        let r = self
            .client
            .send(
                "Search",
                m::SearchRequest {
                    db_name: self.db(),
                    collection_name: self.name(),
                    dsl: expr.to_string(),
                    placeholder_group: group,
                    dsl_type: common::DslType::BoolExprV1 as i32,
                    output_fields: output,
                    search_params: params,
                    nq: 1,
                    consistency_level: level,
                    guarantee_timestamp: guarantee,
                    ..Default::default()
                },
                |mut c, req| async move { c.search(req).await },
            )
            .await?;
        hits(r.results.unwrap_or_default())
    }

    pub(super) fn check_query(
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

    pub(super) fn ef(&self, params: &SearchParams, k: usize) -> usize {
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
