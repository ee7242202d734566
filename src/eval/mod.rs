//! Ranking metrics and dataset evaluation.
