//! Ranking metrics against the authors' evaluator (golden `metrics.safetensors`, produced by their
//! `R1_mAP_CUHK` on random features) and against hand-computed standard AP / mINP.

use candle_core::{DType, Device, Tensor};
use ivt::eval::{rank_exact, Embeddings, RankingAccumulator};

fn golden() -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load("tests/fixtures/metrics/metrics.safetensors", &Device::Cpu)
        .unwrap()
}

fn pids(t: &Tensor) -> Vec<usize> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|p| p as usize)
        .collect()
}

#[test]
fn cmc_and_authors_ap_match_the_authors_evaluator() {
    let g = golden();
    let query = g["query"].to_vec2::<f32>().unwrap();
    let gallery = g["gallery"].to_vec2::<f32>().unwrap();
    let (qp, gp) = (pids(&g["query_pids"]), pids(&g["gallery_pids"]));
    let m = rank_exact(
        Embeddings {
            rows: &query,
            pids: &qp,
        },
        Embeddings {
            rows: &gallery,
            pids: &gp,
        },
        20,
    )
    .unwrap();
    let cmc = g["cmc"]
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(m.cmc.len(), 20);
    for (k, (got, want)) in m.cmc.iter().zip(&cmc).enumerate() {
        assert!((got - want).abs() < 1e-6, "R@{}: {got} vs {want}", k + 1);
    }
    let map = g["map"]
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()[0];
    assert!(
        (m.map_authors - map).abs() < 1e-6,
        "{} vs {map}",
        m.map_authors
    );
    assert_eq!((m.r1, m.r5, m.r10), (m.cmc[0], m.cmc[4], m.cmc[9]));
    // Six golden queries have no positive in the gallery; they count as misses.
    assert_eq!(m.queries, 60);
    assert_eq!(m.queries_without_positive, 6);
    // The trapezoid variant averages each hit's precision with the lower one just before it, so
    // it never exceeds the standard AP.
    assert!(m.map_authors <= m.map && m.map < 1.0);
}

#[test]
fn standard_ap_and_minp_match_hand_computation() {
    let mut acc = RankingAccumulator::new(10);
    // Positives at ranks 1 and 3 (0-based 0 and 2): AP = (1/1 + 2/3) / 2, INP = 2/3.
    acc.add_ranked_matches([true, false, true, false]);
    // Positives at 0-based 1 and 4: AP = (1/2 + 2/5) / 2, INP = 2/5; first hit at rank 2.
    acc.add_ranked_matches([false, true, false, false, true]);
    // A query with no positive: zero everywhere.
    acc.add_ranked_matches([false, false]);
    let m = acc.finish();
    let ap = [(1.0 + 2.0 / 3.0) / 2.0, (0.5 + 0.4) / 2.0, 0.0];
    let inp = [2.0 / 3.0, 0.4, 0.0];
    assert!((m.map - ap.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    assert!((m.minp - inp.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    assert!((m.r1 - 1.0 / 3.0).abs() < 1e-12);
    assert!((m.cmc[1] - 2.0 / 3.0).abs() < 1e-12);
    // Authors' variant, first query: (1 + 1)/2/2 + (1/2 + 2/3)/2/2.
    let authors_q1 = 0.5 + (0.5 + 2.0 / 3.0) / 4.0;
    let authors_q2 = (0.0 + 0.5) / 4.0 + (0.25 + 0.4) / 4.0;
    assert!((m.map_authors - (authors_q1 + authors_q2) / 3.0).abs() < 1e-12);
    assert_eq!(m.queries_without_positive, 1);
}

#[test]
fn ties_keep_gallery_order_and_mismatched_inputs_are_rejected() {
    let mut acc = RankingAccumulator::new(10);
    acc.add_scores(&[0.5, 0.5, 0.1], 7, &[3, 7, 7]);
    let m = acc.finish();
    assert_eq!(m.r1, 0.0);
    assert_eq!(m.cmc[1], 1.0);

    let rows = vec![vec![1.0f32, 0.0]];
    let err = rank_exact(
        Embeddings {
            rows: &rows,
            pids: &[0, 1],
        },
        Embeddings {
            rows: &rows,
            pids: &[0],
        },
        10,
    )
    .unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
}

#[test]
fn truncated_rankings_count_unretrieved_positives_against_ap_and_inp() {
    use ivt::eval::RankingAccumulator;
    // Two positives, only the first retrieved (rank 0): AP = (1/1 + 0) / 2, INP unknown = 0.
    let mut cut = RankingAccumulator::new(10);
    cut.add_truncated(&[0], 2);
    let m = cut.finish();
    assert_eq!((m.r1, m.map, m.minp), (1.0, 0.5, 0.0));
    // With every positive retrieved it is the full ranking.
    let mut full = RankingAccumulator::new(10);
    full.add_truncated(&[0, 3], 2);
    let mut reference = RankingAccumulator::new(10);
    reference.add_positive_ranks(&[0, 3]);
    assert_eq!(full.finish(), reference.finish());
}
