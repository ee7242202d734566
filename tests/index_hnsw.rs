//! HNSW search against exact search on clustered vectors: recall, filters inside the graph
//! traversal, tombstones, reload from the dump, compaction.

use std::collections::HashSet;

use ivt::index::{
    GalleryIndex, HnswParams, ImageRecord, SearchFilter, SearchParams, VectorStorage,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FP: &str = "fp";
const DIM: usize = 48;
const N: usize = 3000;

/// The recall@10 every graph here must reach (200 queries, the index's default `ef`).
///
/// A graph's recall depends on the order its points were inserted in, so it is measured on
/// graphs built on one thread (`one_thread`), the same every run; the float rounding of another
/// CPU's vector unit can still pick a different graph. Measured spread over 50 graphs of the
/// 3,000-point set built by ivt's parallel insert (2 cores, AMD EPYC): 0.989-0.9935; one-thread
/// graphs here: 0.9915-0.996. The bound sits well below both; a broken graph falls far lower.
const MIN_RECALL: f64 = 0.98;

/// Runs `f` on a one-thread rayon pool, so hnsw_rs inserts in input order and builds the same
/// graph every run (its level generator is seeded). ivt itself inserts large batches on all
/// cores; `the_parallel_build_reaches_the_same_recall` checks that path.
fn one_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool")
        .install(f)
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller: rand's core crate has no normal distribution.
    let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn normalise(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.into_iter().map(|a| a / n).collect()
}

/// A mixture of 40 Gaussians on the sphere: realistic neighbourhoods, unlike uniform noise.
fn clustered(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..40)
        .map(|_| normalise((0..DIM).map(|_| gaussian(&mut rng)).collect()))
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            normalise(c.iter().map(|x| x + 0.12 * gaussian(&mut rng)).collect())
        })
        .collect()
}

fn record(i: usize) -> ImageRecord {
    let mut r = ImageRecord::new(format!("img{i}"), format!("p{}", i / 3));
    r.camera_id = Some(format!("c{}", i % 10));
    r
}

fn build(dir: &std::path::Path, vectors: &[Vec<f32>]) -> GalleryIndex {
    build_with(dir, vectors, VectorStorage::F32)
}

fn build_with(dir: &std::path::Path, vectors: &[Vec<f32>], storage: VectorStorage) -> GalleryIndex {
    let mut index =
        GalleryIndex::begin_build(dir, FP, DIM, HnswParams::default(), storage).unwrap();
    let items: Vec<_> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (record(i), v.clone()))
        .collect();
    for chunk in items.chunks(1000) {
        index.add(chunk.to_vec()).unwrap();
    }
    index.publish().unwrap();
    index
}

fn ids(index: &GalleryIndex, q: &[f32], exact: bool, filter: &SearchFilter) -> Vec<String> {
    let params = SearchParams {
        top_k: 10,
        ef: None,
        exact,
    };
    index
        .search_images(q, &params, filter)
        .unwrap()
        .into_iter()
        .map(|h| h.record.image_id)
        .collect()
}

fn recall(index: &GalleryIndex, queries: &[Vec<f32>], filter: &SearchFilter) -> f64 {
    let (mut found, mut total) = (0usize, 0usize);
    for q in queries {
        let truth: HashSet<String> = ids(index, q, true, filter).into_iter().collect();
        let approx = ids(index, q, false, filter);
        found += approx.iter().filter(|id| truth.contains(*id)).count();
        total += truth.len();
    }
    found as f64 / total as f64
}

#[test]
fn hnsw_matches_exact_search_before_and_after_reload() {
    one_thread(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        let queries = clustered(200, 2);
        let index = build(&dir, &clustered(N, 1));
        let r = recall(&index, &queries, &SearchFilter::default());
        assert!(r >= MIN_RECALL, "recall@10 = {r}");
        same_scores_as_exact(&index, &queries);

        drop(index);
        let reopened = GalleryIndex::open(&dir, FP).unwrap();
        assert!(reopened.manifest().graph.is_some());
        assert_eq!(reopened.graph_pending(), 0);
        let r2 = recall(&reopened, &queries, &SearchFilter::default());
        assert!(r2 >= MIN_RECALL, "recall@10 after reload = {r2}");
        same_scores_as_exact(&reopened, &queries);
    })
}

/// The build as `ivt index build` runs it: hnsw_rs inserts on every core, so the graph differs
/// from run to run (50 builds measured: recall 0.989-0.9935, no point lost in 30 of them).
#[test]
fn the_parallel_build_reaches_the_same_recall() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors = clustered(N, 1);
    let index = build(&tmp.path().join("idx"), &vectors);
    let r = recall(&index, &clustered(200, 2), &SearchFilter::default());
    assert!(r >= MIN_RECALL, "recall@10 = {r}");
    // Every point finds itself (guards against hnsw_rs parallel-insert orphans, issue #32).
    let lost = (0..N)
        .filter(|&i| {
            ids(&index, &vectors[i], false, &SearchFilter::default())[0] != format!("img{i}")
        })
        .count();
    assert!(lost <= N / 1000, "{lost} points cannot find themselves");
}

#[test]
fn the_graph_over_f16_storage_matches_exact_search() {
    one_thread(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        let index = build_with(&dir, &clustered(N, 5), VectorStorage::F16);
        let queries = clustered(200, 6);
        let r = recall(&index, &queries, &SearchFilter::default());
        assert!(r >= MIN_RECALL, "recall@10 = {r}");
        same_scores_as_exact(&index, &queries);
    })
}

#[test]
fn images_added_to_a_published_index_are_found_through_the_graph() {
    one_thread(|| {
        const ADDED: usize = 500;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        let vectors = clustered(N + 2 * ADDED, 3);
        let queries = clustered(100, 4);
        let check = |index: &GalleryIndex, upto: usize| {
            let r = recall(index, &queries, &SearchFilter::default());
            assert!(r >= MIN_RECALL, "recall@10 = {r}");
            same_scores_as_exact(index, &queries);
            let lost = (N..upto)
                .filter(|&i| {
                    ids(index, &vectors[i], false, &SearchFilter::default())[0] != format!("img{i}")
                })
                .count();
            assert!(lost <= 1, "{lost} added points cannot find themselves");
        };
        let added = |range: std::ops::Range<usize>| -> Vec<_> {
            range.map(|i| (record(i), vectors[i].clone())).collect()
        };
        let mut index = build(&dir, &vectors[..N]);
        index.add(added(N..N + ADDED)).unwrap();
        assert_eq!(index.graph_pending(), ADDED);
        check(&index, N + ADDED);
        index.save_graph().unwrap();
        assert_eq!(index.graph_pending(), 0);
        check(&index, N + ADDED);

        // Added and not saved: re-inserted when the index is opened again.
        index.add(added(N + ADDED..N + 2 * ADDED)).unwrap();
        drop(index);
        let reopened = GalleryIndex::open(&dir, FP).unwrap();
        assert_eq!(reopened.graph_pending(), ADDED);
        assert_eq!(reopened.len(), N + 2 * ADDED);
        check(&reopened, N + 2 * ADDED);
    })
}

#[test]
fn an_index_written_before_the_flat_graph_file_is_flattened_when_opened() {
    one_thread(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        drop(build(&dir, &clustered(N, 7)));
        let current = std::fs::read_to_string(dir.join("CURRENT")).unwrap();
        let generation = dir.join(current.trim());
        let manifest_path = generation.join("manifest.json");
        let mut manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
        // Such an index also predates file checksums.
        let fields = manifest.as_object_mut().unwrap();
        assert!(fields.remove("files").is_some() && fields.remove("manifest_crc32").is_some());
        let dump = manifest["graph"].as_object_mut().unwrap();
        let basename = dump["basename"].as_str().unwrap().to_string();
        assert!(dump.remove("flat_bytes").is_some());
        std::fs::write(&manifest_path, manifest.to_string()).unwrap();
        std::fs::remove_file(generation.join(format!("{basename}.flat"))).unwrap();

        let index = GalleryIndex::open(&dir, FP).unwrap();
        let queries = clustered(200, 8);
        let r = recall(&index, &queries, &SearchFilter::default());
        assert!(r >= MIN_RECALL, "recall@10 = {r}");
        same_scores_as_exact(&index, &queries);
    })
}

/// Graph hits carry exactly the scores exact search gives the same images (the graph re-scores
/// from its own copy of the vectors, memory-mapped after a reload).
fn same_scores_as_exact(index: &GalleryIndex, queries: &[Vec<f32>]) {
    let search = |q: &[f32], exact: bool| {
        let params = SearchParams {
            top_k: 10,
            ef: None,
            exact,
        };
        index
            .search_images(q, &params, &SearchFilter::default())
            .unwrap()
            .into_iter()
            .map(|h| (h.record.image_id, h.score.to_bits()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let mut compared = 0;
    for q in queries {
        let exact = search(q, true);
        for (id, bits) in search(q, false) {
            if let Some(e) = exact.get(&id) {
                assert_eq!(bits, *e, "{id}: graph and exact scores differ");
                compared += 1;
            }
        }
    }
    assert!(
        compared > queries.len() * 9,
        "only {compared} hits compared"
    );
}

#[test]
fn filters_hold_inside_the_graph_and_selective_filters_are_exact() {
    one_thread(|| {
        let tmp = tempfile::tempdir().unwrap();
        let vectors = clustered(N, 3);
        let queries = clustered(60, 4);
        let index = build(&tmp.path().join("idx"), &vectors);
        // 30% of the gallery: searched in the graph with the filter applied during traversal.
        let wide = SearchFilter {
            camera_ids: vec!["c1".into(), "c4".into(), "c7".into()],
            ..Default::default()
        };
        // 1/3000 of the gallery's persons excluded, plus a filter keeping ~0.3%: exact fallback.
        let narrow = SearchFilter {
            camera_ids: vec!["c2".into()],
            exclude_person_ids: (0..990).map(|p| format!("p{p}")).collect(),
            ..Default::default()
        };
        for q in &queries {
            for h in ids(&index, q, false, &wide) {
                let i: usize = h[3..].parse().unwrap();
                assert!(
                    [1, 4, 7].contains(&(i % 10)),
                    "{h} passed the camera filter"
                );
            }
            assert_eq!(
                ids(&index, q, false, &narrow),
                ids(&index, q, true, &narrow)
            );
        }
        assert!(recall(&index, &queries, &wide) >= 0.98);
    })
}

#[test]
fn tombstones_are_skipped_and_compaction_drops_them() {
    one_thread(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        let vectors = clustered(1200, 5);
        let mut index = build(&dir, &vectors);
        let removed: Vec<String> = (0..1200).step_by(2).map(|i| format!("img{i}")).collect();
        assert_eq!(index.remove_images(&removed).unwrap(), 600);
        for (i, v) in vectors.iter().enumerate().step_by(37) {
            let got = ids(&index, v, false, &SearchFilter::default());
            assert!(got
                .iter()
                .all(|id| id[3..].parse::<usize>().unwrap() % 2 == 1));
            if i % 2 == 1 {
                assert_eq!(got[0], format!("img{i}"));
            }
        }
        let compacted = index.compact().unwrap();
        assert_eq!(compacted.manifest().slots, 600);
        assert_eq!(compacted.manifest().removed, 0);
        drop((index, compacted));
        let index = GalleryIndex::open(&dir, FP).unwrap();
        assert_eq!(index.len(), 600);
        assert_eq!(index.manifest().slots, 600);
        let got = ids(&index, &vectors[11], false, &SearchFilter::default());
        assert_eq!(got[0], "img11");
    })
}

/// The gallery of the duplicates test: clustered vectors with 300 copies of one vector spread
/// among them (slots `TWIN_STEP * j`), like the identical frames of a still camera.
const TWINS: usize = 300;
const TWIN_STEP: usize = 7;

fn with_twins(twin: &[f32]) -> Vec<Vec<f32>> {
    let mut vectors = clustered(N, 9);
    for j in 0..TWINS {
        vectors[TWIN_STEP * j] = twin.to_vec();
    }
    vectors
}

/// The twins among the hits of a `top_k` search, checked to agree with exact search: the same
/// ids with bit-identical scores, when only twins can be returned (`top_k` <= live twins).
fn twins_found(
    index: &GalleryIndex,
    twin: &[f32],
    top_k: usize,
    ef: Option<usize>,
    filter: &SearchFilter,
) -> std::collections::BTreeSet<usize> {
    let search = |exact| {
        let params = SearchParams { top_k, ef, exact };
        index
            .search_images(twin, &params, filter)
            .unwrap()
            .into_iter()
            .map(|h| (h.record.image_id[3..].parse::<usize>().unwrap(), h.score))
            .collect::<Vec<_>>()
    };
    let (graph, exact) = (search(false), search(true));
    let twins = |hits: &[(usize, f32)]| -> std::collections::BTreeSet<usize> {
        hits.iter()
            .map(|&(i, _)| i)
            .filter(|i| i % TWIN_STEP == 0 && i / TWIN_STEP < TWINS)
            .collect()
    };
    let (found, truth) = (twins(&graph), twins(&exact));
    assert_eq!(found, truth, "graph and exact search find different twins");
    if found.len() == graph.len() {
        let bits =
            |h: &[(usize, f32)]| h.iter().map(|&(i, s)| (i, s.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&graph), bits(&exact));
    }
    found
}

#[test]
fn identical_images_all_stay_reachable() {
    one_thread(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx");
        let twin = clustered(1, 10).remove(0);
        let mut index = build(&dir, &with_twins(&twin));
        let all: std::collections::BTreeSet<usize> = (0..TWINS).map(|j| TWIN_STEP * j).collect();
        let none = SearchFilter::default();
        for ef in [None, Some(4096)] {
            assert_eq!(
                twins_found(&index, &twin, TWINS, ef, &none),
                all,
                "ef {ef:?}"
            );
        }
        assert_eq!(twins_found(&index, &twin, 10, None, &none).len(), 10);
        let camera = SearchFilter {
            camera_ids: vec!["c3".into(), "c6".into()],
            ..Default::default()
        };
        let on_camera = |live: &std::collections::BTreeSet<usize>| {
            live.iter()
                .copied()
                .filter(|i| [3, 6].contains(&(i % 10)))
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(
            twins_found(&index, &twin, TWINS, None, &camera),
            on_camera(&all)
        );

        // Remove the first copy (the one the graph met first) and some others.
        let removed: Vec<usize> = (0..TWINS).step_by(13).map(|j| TWIN_STEP * j).collect();
        let ids: Vec<String> = removed.iter().map(|i| format!("img{i}")).collect();
        assert_eq!(index.remove_images(&ids).unwrap(), removed.len());
        let live: std::collections::BTreeSet<usize> = all
            .iter()
            .copied()
            .filter(|i| !removed.contains(i))
            .collect();
        let check = |index: &GalleryIndex| {
            assert_eq!(twins_found(index, &twin, TWINS, None, &none), live);
            assert_eq!(twins_found(index, &twin, live.len(), None, &none), live);
            assert_eq!(
                twins_found(index, &twin, TWINS, None, &camera),
                on_camera(&live)
            );
        };
        check(&index);
        drop(index);
        let index = GalleryIndex::open(&dir, FP).unwrap();
        check(&index);
        let compacted = index.compact().unwrap();
        check(&compacted);
        drop((index, compacted));
        let mut index = GalleryIndex::open(&dir, FP).unwrap();
        check(&index);

        // Copies added after the graph was saved land in the live graph beside the flat one.
        let more: Vec<_> = (0..50)
            .map(|j| (record(10_000 + TWIN_STEP * j), twin.clone()))
            .collect();
        index.add(more).unwrap();
        let found = twins_found(&index, &twin, TWINS + 100, None, &none);
        assert_eq!(found, live, "old copies, with new ones added");
        let hits = index
            .search_images(
                &twin,
                &SearchParams {
                    top_k: TWINS + 100,
                    ef: None,
                    exact: false,
                },
                &none,
            )
            .unwrap();
        let score = hits[0].score;
        assert_eq!(
            hits.iter().filter(|h| h.score == score).count(),
            live.len() + 50
        );

        // An index created empty and added to holds only a live hnsw_rs graph (no flat one).
        let mut fresh =
            GalleryIndex::create(&tmp.path().join("fresh"), FP, DIM, HnswParams::default())
                .unwrap();
        let items = with_twins(&twin)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (record(i), v))
            .collect();
        fresh.add(items).unwrap();
        assert!(fresh.manifest().graph.is_none());
        assert_eq!(twins_found(&fresh, &twin, TWINS, None, &none), all);
        assert_eq!(
            twins_found(&fresh, &twin, TWINS, None, &camera),
            on_camera(&all)
        );
    })
}
