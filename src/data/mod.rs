//! Readers for gallery sources (manifests, folders) and the text-person datasets
//! (CUHK-PEDES, ICFG-PEDES, RSTPReid).

pub mod datasets;
pub mod gallery;
pub mod synth;

pub use datasets::{
    contiguous_labels, filter_split, read_dataset, DataError, DatasetFormat, DatasetImage,
    PersonLabels, Split,
};
