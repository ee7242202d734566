//! Readers for the text-person datasets (CUHK-PEDES, ICFG-PEDES, RSTPReid) and the synthetic
//! dataset generator. Gallery sources for indexing are in [`crate::ingest`].

pub mod datasets;
pub mod synth;

pub use datasets::{
    contiguous_labels, filter_split, read_dataset, DataError, DatasetFormat, DatasetImage,
    PersonLabels, Split,
};
