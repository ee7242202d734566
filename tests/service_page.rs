//! The search page in a real browser: Debian's headless Chromium, driven over WebDriver by its
//! chromium-driver, against the demo model and gallery (what `ivt serve` serves by default).
//! Types the README's caption, checks that the first card is person "10", then runs "more like
//! this" on its best crop.
//!
//! Without `chromium` and `chromedriver` the test says so and passes, so a plain `cargo test`
//! works on a machine without them; `IVT_REQUIRE_BROWSER=1` (set by CI) turns that into a
//! failure. `IVT_CHROMIUM` / `IVT_CHROMEDRIVER` name other binaries; `IVT_PAGE_SCREENSHOT=PATH`
//! saves a screenshot of the page with the caption's results (docs/search-page.png).

mod common;
mod service_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use ivt::service::ServiceConfig;
use serde_json::json;

/// The README's example caption (a caption of gallery person "10").
const CAPTION: &str = "A little girl is dressed in a brown long coat and blue shorts. She is carrying a blue shoulder bag.";
/// Longest wait for the page to show what it should.
const PATIENCE: Duration = Duration::from_secs(60);

fn which(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(exe: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let mut driver = Driver { child, port };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `script` (a JS expression) until it is true.
async fn wait_until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = c.execute(&format!("return !!({script});"), vec![]).await;
        if matches!(v, Ok(serde_json::Value::Bool(true))) {
            return;
        }
        if Instant::now() > deadline {
            let status = c
                .execute(
                    "return document.getElementById('status').textContent",
                    vec![],
                )
                .await;
            panic!("the page never showed {what}; status: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn strings(c: &Client, script: &str) -> Vec<String> {
    let v = c
        .execute(&format!("return {script};"), vec![])
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_page_finds_the_readme_person_and_more_like_them() {
    let chromium = which("IVT_CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = which("IVT_CHROMEDRIVER", &["chromedriver"]);
    let required = std::env::var("IVT_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0");
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            !required,
            "IVT_REQUIRE_BROWSER is set but chromium/chromedriver are missing: \
             apt-get install chromium chromium-driver"
        );
        eprintln!("chromium or chromedriver not installed: search page test not run");
        return;
    };

    let tmp = tempfile::tempdir().unwrap();
    let (files, index) = common::demo_index(tmp.path());
    let mut config = ServiceConfig::new(files, index);
    config.shutdown_timeout = Duration::from_secs(10);
    let (server, base) = service_support::serve_with_http(config).await;

    let driver = Driver::start(&chromedriver);
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        // A laptop screen.
        "--window-size=1366,900",
        &format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    let c = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("WebDriver session");

    c.goto(&format!("{base}/")).await.unwrap();
    wait_until(
        &c,
        "the gallery size",
        "document.getElementById('status').textContent.includes('gallery of 1000 images')",
    )
    .await;
    c.find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys(CAPTION)
        .await
        .unwrap();
    c.find(Locator::Id("search"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "person cards",
        "document.querySelectorAll('.card').length === 10",
    )
    .await;
    let persons = strings(
        &c,
        "[...document.querySelectorAll('.card')].map(e => e.dataset.person)",
    )
    .await;
    assert_eq!(persons[0], "10", "cards: {persons:?}");
    // Every crop of the first card shows its thumbnail.
    wait_until(
        &c,
        "the first card's thumbnails",
        "[...document.querySelectorAll('.card:first-child img')].every(i => i.complete && i.naturalWidth > 0)",
    )
    .await;
    let crops = strings(
        &c,
        "[...document.querySelectorAll('.card:first-child .more')].map(b => b.dataset.imageId)",
    )
    .await;
    assert_eq!(
        crops.len(),
        4,
        "person 10 has four gallery images: {crops:?}"
    );
    let meta = strings(
        &c,
        "[...document.querySelectorAll('.card:first-child .meta')].map(m => m.textContent)",
    )
    .await;
    assert!(meta.iter().all(|m| m.contains("cam ")), "{meta:?}");
    if let Some(path) = std::env::var_os("IVT_PAGE_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }

    // "More like this" on the best crop: person 10's other images, the query image left out.
    let query = &crops[0];
    c.find(Locator::Css(".card:first-child .more"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &c,
        "the image search's results",
        "document.getElementById('status').textContent.includes('people for more like image')",
    )
    .await;
    let persons = strings(
        &c,
        "[...document.querySelectorAll('.card')].map(e => e.dataset.person)",
    )
    .await;
    assert_eq!(persons[0], "10", "cards: {persons:?}");
    let shown = strings(
        &c,
        "[...document.querySelectorAll('.more')].map(b => b.dataset.imageId)",
    )
    .await;
    assert!(!shown.contains(query), "{query} is the query: {shown:?}");
    let first = strings(
        &c,
        "[...document.querySelectorAll('.card:first-child .more')].map(b => b.dataset.imageId)",
    )
    .await;
    let mut others: Vec<&String> = crops[1..].iter().collect();
    others.sort();
    let mut first_sorted: Vec<&String> = first.iter().collect();
    first_sorted.sort();
    assert_eq!(first_sorted, others, "person 10's three other images");

    c.close().await.unwrap();
    drop(driver);
    server.shutdown().await.unwrap();
}
