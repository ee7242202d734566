//! The synthetic benchmark end to end: `ivt synth` output is a readable CUHK-PEDES dataset,
//! training on it lowers the loss, and the shipped demo model finds the right person in the demo
//! gallery through the real gRPC service, as well as its model card says (`ivt eval` agrees).

mod common;
mod service_support;

use std::collections::HashSet;
use std::path::Path;

use ivt::data::synth::{SynthDataset, SynthOptions};
use ivt::data::{read_dataset, Split};
use ivt::ingest::demo::read_synth_options;
use ivt::proto::SearchRequest;
use ivt::service::ServiceConfig;

use common::{demo_dir, demo_index, ivt, run_ok};

/// The metrics the model card reports (`models/demo/metrics.json`, written by `ivt eval`).
fn card_metrics() -> serde_json::Value {
    let text = std::fs::read_to_string(demo_dir().join("metrics.json")).expect("metrics.json");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

fn metric(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no `{key}` in {v}"))
}

#[test]
fn synth_writes_a_deterministic_cuhk_pedes_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = |dir: &Path| {
        run_ok(
            ivt()
                .args(["synth", "--identities", "30", "--images-per-identity", "3"])
                .args(["--seed", "5", "--out", dir.to_str().unwrap()]),
        )
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let summary: serde_json::Value = serde_json::from_str(gen(&a).trim()).unwrap();
    assert_eq!(summary["images"], 90);
    gen(&b);
    let annotation = std::fs::read(a.join("reid_raw.json")).unwrap();
    assert_eq!(annotation, std::fs::read(b.join("reid_raw.json")).unwrap());

    let images = read_dataset(&a.join("reid_raw.json")).unwrap();
    assert_eq!(images.len(), 90);
    let mut split_of = std::collections::HashMap::new();
    for im in &images {
        assert_eq!(im.captions.len(), 2);
        let file = a.join("imgs").join(&im.path);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            std::fs::read(b.join("imgs").join(&im.path)).unwrap(),
            "{} differs between runs",
            im.path.display()
        );
        let img = image::open(&file).unwrap();
        assert_eq!((img.height(), img.width()), (160, 64));
        // An identity lives in exactly one split.
        assert_eq!(
            *split_of.entry(im.person_id.clone()).or_insert(im.split),
            im.split
        );
    }
    let count = |s: Split| split_of.values().filter(|&&v| v == s).count();
    assert_eq!(
        (count(Split::Train), count(Split::Val), count(Split::Test)),
        (22, 1, 7)
    );
    // The per-split manifests index straight into a gallery.
    let test_lines = std::fs::read_to_string(a.join("test.jsonl")).unwrap();
    assert_eq!(test_lines.lines().count(), 21);
}

#[test]
fn training_on_synthetic_data_lowers_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    run_ok(
        ivt()
            .args(["synth", "--identities", "8", "--images-per-identity", "2"])
            .args(["--seed", "1", "--out", data.to_str().unwrap()]),
    );
    let config = common::fixture("model-tiny-s12/config.json");
    let out = run_ok(
        ivt()
            .args(["train", "--epochs", "30", "--batch-size", "8"])
            .args([
                "--dataset",
                data.join("reid_raw.json").to_str().unwrap(),
                "--images",
                data.join("imgs").to_str().unwrap(),
                "--out",
                tmp.path().join("run").to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
                "--optimizer",
                "adamw",
                "--lr",
                "0.003",
                "--warmup-epochs",
                "0",
                "--eval-every",
                "0",
                "--drop-path",
                "0",
                "--embed-dropout",
                "0",
                "--mask-ratio",
                "0",
            ]),
    );
    let losses: Vec<f64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 30, "{out}");
    // Seeded (`--seed` defaults to 42), so a run is the same every time on one machine; another
    // CPU's float rounding makes it another trajectory, like another seed. A small set seen many
    // times (12 training images, 60 steps) makes the fall large against that noise: the mean loss
    // of the last 10 epochs over the first 3, measured for seeds 1-11 and 42, is 0.59-0.84 (0.71
    // for 42), far below the bound; the old 10-epoch run on 40 images gave 0.91-1.0 over seeds,
    // around the same bound.
    let first = losses[..3].iter().sum::<f64>() / 3.0;
    let last = losses[20..].iter().sum::<f64>() / 10.0;
    assert!(
        last < 0.95 * first,
        "loss should fall on synthetic data: {losses:?}"
    );
}

#[test]
fn the_demo_model_finds_the_right_person_over_grpc() {
    let tmp = tempfile::tempdir().unwrap();
    let (files, index_dir) = demo_index(tmp.path());
    let options: SynthOptions = read_synth_options(&demo_dir()).unwrap();
    let dataset = SynthDataset::plan(&options).unwrap();
    // One query per test image: its first caption.
    let queries: Vec<(String, String)> = dataset
        .in_splits(&[Split::Test])
        .map(|(_, im)| (im.person_id.to_string(), im.captions[0].clone()))
        .collect();
    assert!(
        queries.iter().map(|q| &q.0).collect::<HashSet<_>>().len() >= 200,
        "the demo gallery must hold at least 200 identities"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let hits = rt.block_on(async {
        let mut config = ServiceConfig::new(files, index_dir);
        config.shutdown_timeout = std::time::Duration::from_secs(10);
        let server = service_support::serve(config).await;
        let mut client = service_support::client(&server).await;
        let mut hits = 0usize;
        for (person, text) in &queries {
            let response = client
                .search(SearchRequest {
                    text: text.clone(),
                    top_k: 1,
                    ..Default::default()
                })
                .await
                .expect("search")
                .into_inner();
            if response.results.first().map(|r| &r.person_id) == Some(person) {
                hits += 1;
            }
        }
        server.shutdown().await.unwrap();
        hits
    });
    let r1 = hits as f64 / queries.len() as f64;
    let card = metric(&card_metrics(), "r1");
    // The service searches the HNSW graph and groups by person; the card's exact evaluation
    // ranks images. They agree to within a few queries.
    assert!(
        r1 >= card - 0.03,
        "R@1 over gRPC {r1:.4} is below the model card's {card:.4}"
    );
}

#[test]
fn ivt_eval_reproduces_the_model_card() {
    let tmp = tempfile::tempdir().unwrap();
    demo_index(tmp.path());
    let gallery = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("gallery").is_dir())
        .expect("demo cache folder")
        .join("gallery");
    let out = run_ok(ivt().args(["eval", "--split", "test"]).args([
        "--dataset",
        gallery.join("reid_raw.json").to_str().unwrap(),
        "--images",
        gallery.join("imgs").to_str().unwrap(),
    ]));
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    let card = card_metrics();
    for key in ["r1", "r5", "r10", "map", "minp"] {
        let (g, c) = (metric(&got, key), metric(&card, key));
        assert!(
            (g - c).abs() < 2e-3,
            "{key}: eval {g:.4}, model card {c:.4}"
        );
    }
}
