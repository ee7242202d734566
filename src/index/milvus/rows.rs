//! Conversions between ivt's records and Milvus' column-major field data.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::expr::NO_TIME;
use super::proto::common::KeyValuePair;
use super::proto::schema::{self, field_data, scalar_field, vector_field, DataType};
use super::VECTOR_FIELD;
use crate::index::{ImageHit, ImageRecord, IndexError};

pub(super) fn kv(key: &str, value: impl ToString) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.to_string(),
    }
}

fn scalar(field: &str, data: scalar_field::Data, kind: DataType) -> schema::FieldData {
    schema::FieldData {
        r#type: kind as i32,
        field_name: field.into(),
        field: Some(field_data::Field::Scalars(schema::ScalarField {
            data: Some(data),
        })),
        ..Default::default()
    }
}

fn string_column(field: &str, values: Vec<String>) -> schema::FieldData {
    scalar(
        field,
        scalar_field::Data::StringData(schema::StringArray { data: values }),
        DataType::VarChar,
    )
}

/// Rows as Milvus' column-major insert data.
pub(super) fn columns(items: &[(ImageRecord, Vec<f32>)], dim: usize) -> Vec<schema::FieldData> {
    let col = |f: &dyn Fn(&ImageRecord) -> String| items.iter().map(|(r, _)| f(r)).collect();
    let attributes = items
        .iter()
        .map(|(r, _)| serde_json::to_vec(&r.attributes).unwrap_or_else(|_| b"{}".to_vec()))
        .collect();
    let captured = items
        .iter()
        .map(|(r, _)| r.captured_at.map_or(NO_TIME, |t| t.timestamp_millis()))
        .collect();
    let vectors = items.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    vec![
        string_column("image_id", col(&|r| r.image_id.clone())),
        string_column("person_id", col(&|r| r.person_id.clone())),
        string_column(
            "camera_id",
            col(&|r| r.camera_id.clone().unwrap_or_default()),
        ),
        scalar(
            "captured_ms",
            scalar_field::Data::LongData(schema::LongArray { data: captured }),
            DataType::Int64,
        ),
        string_column("path", col(&|r| r.path.clone().unwrap_or_default())),
        scalar(
            "attributes",
            scalar_field::Data::JsonData(schema::JsonArray { data: attributes }),
            DataType::Json,
        ),
        schema::FieldData {
            r#type: DataType::FloatVector as i32,
            field_name: VECTOR_FIELD.into(),
            field: Some(field_data::Field::Vectors(schema::VectorField {
                dim: dim as i64,
                data: Some(vector_field::Data::FloatVector(schema::FloatArray {
                    data: vectors,
                })),
            })),
            ..Default::default()
        },
    ]
}

fn scalar_data(f: &schema::FieldData) -> Option<&scalar_field::Data> {
    match &f.field {
        Some(field_data::Field::Scalars(s)) => s.data.as_ref(),
        _ => None,
    }
}

pub(super) fn strings(f: &schema::FieldData) -> Vec<String> {
    match scalar_data(f) {
        Some(scalar_field::Data::StringData(s)) => s.data.clone(),
        _ => Vec::new(),
    }
}

pub(super) fn longs(f: &schema::FieldData) -> Vec<i64> {
    match scalar_data(f) {
        Some(scalar_field::Data::LongData(s)) => s.data.clone(),
        _ => Vec::new(),
    }
}

/// Search results (one query) as image hits, best first.
pub(super) fn hits(r: schema::SearchResultData) -> Result<Vec<ImageHit>, IndexError> {
    let ids = match r.ids.and_then(|i| i.id_field) {
        Some(schema::i_ds::IdField::StrId(s)) => s.data,
        Some(schema::i_ds::IdField::IntId(_)) => {
            return Err(IndexError::Backend(
                "the collection has integer primary keys: not an ivt gallery".into(),
            ))
        }
        None => Vec::new(),
    };
    let n = ids.len();
    if r.scores.len() != n {
        return Err(IndexError::Backend(format!(
            "Milvus returned {n} ids but {} scores",
            r.scores.len()
        )));
    }
    Ok(records(ids, &r.fields_data)
        .into_iter()
        .zip(r.scores)
        .map(|(record, score)| ImageHit { record, score })
        .collect())
}

/// The records of rows `ids` from their columns (`fields`, as a search or query returns them).
pub(super) fn records(ids: Vec<String>, fields: &[schema::FieldData]) -> Vec<ImageRecord> {
    let n = ids.len();
    let column = |name: &str| fields.iter().find(|f| f.field_name == name);
    let text = |name: &str| -> Vec<String> {
        let mut v = column(name).map(strings).unwrap_or_default();
        v.resize(n, String::new());
        v
    };
    let persons = text("person_id");
    let cameras = text("camera_id");
    let paths = text("path");
    let mut captured = column("captured_ms").map(longs).unwrap_or_default();
    captured.resize(n, NO_TIME);
    let attributes: Vec<BTreeMap<String, String>> = match column("attributes").and_then(scalar_data)
    {
        Some(scalar_field::Data::JsonData(j)) => j
            .data
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::with_capacity(n);
    for (i, image_id) in ids.into_iter().enumerate() {
        let mut record = ImageRecord::new(image_id, persons[i].clone());
        record.camera_id = Some(cameras[i].clone()).filter(|c| !c.is_empty());
        record.path = Some(paths[i].clone()).filter(|p| !p.is_empty());
        record.captured_at = (captured[i] != NO_TIME)
            .then(|| Utc.timestamp_millis_opt(captured[i]).single())
            .flatten();
        record.attributes = attributes.get(i).cloned().unwrap_or_default();
        out.push(record);
    }
    out
}

/// The values of a float vector column, row after row.
pub(super) fn floats(f: &schema::FieldData) -> Vec<f32> {
    match &f.field {
        Some(field_data::Field::Vectors(schema::VectorField {
            data: Some(vector_field::Data::FloatVector(v)),
            ..
        })) => v.data.clone(),
        _ => Vec::new(),
    }
}
