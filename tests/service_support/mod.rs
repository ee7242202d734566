//! Shared set-up for the service tests: the golden tiny model, a small gallery of generated PNG
//! person crops, a server on 127.0.0.1:0 and a tonic client for it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ivt::index::{GalleryIndex, HnswParams, ImageRecord};
use ivt::model::{Encoder, ModelFiles};
use ivt::proto::retrieval_client::RetrievalClient;
use ivt::service::{RunningServer, ServiceConfig};
use tonic::transport::Channel;

pub mod process;

/// The golden tiny model (stride 12, 96x48 images, hidden 64).
pub fn model_files() -> ModelFiles {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-tiny-s12");
    ModelFiles::resolve(&dir, None).expect("tiny model fixture")
}

/// The same model, loaded locally to compute expected answers.
pub fn local_encoder() -> Encoder {
    Encoder::load(
        &model_files(),
        &candle_core::Device::Cpu,
        candle_core::DType::F32,
    )
    .expect("load tiny model")
}

/// One gallery image: metadata and PNG bytes.
pub struct GalleryImage {
    pub record: ImageRecord,
    pub png: Vec<u8>,
}

/// A PNG "person crop": vertical bands whose colours depend on `seed`, so images differ.
pub fn png(seed: u32, width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let band = (y * 4 / height.max(1)) + seed;
        let r = (band.wrapping_mul(67) + x * 3) % 256;
        let g = (band.wrapping_mul(151) + y * 2) % 256;
        let b = (seed.wrapping_mul(89) + x + y) % 256;
        image::Rgb([r as u8, g as u8, b as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// Capture time of image `i` of the test gallery: one hour apart from 2024-05-01 08:00 UTC.
pub fn captured_at(i: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap() + chrono::Duration::hours(i as i64)
}

/// `persons` x `per_person` images; camera `cam-a` for even images, `cam-b` for odd ones.
pub fn gallery(persons: u32, per_person: u32) -> Vec<GalleryImage> {
    let mut out = Vec::new();
    for p in 0..persons {
        for k in 0..per_person {
            let i = p * per_person + k;
            let mut record = ImageRecord::new(format!("img-{i:03}"), format!("person-{p:02}"));
            record.camera_id = Some(
                if i.is_multiple_of(2) {
                    "cam-a"
                } else {
                    "cam-b"
                }
                .into(),
            );
            record.captured_at = Some(captured_at(i));
            record.path = Some(format!("crops/img-{i:03}.png"));
            out.push(GalleryImage {
                record,
                png: png(i * 7 + p, 40 + (i % 5) * 8, 100 + (i % 3) * 20),
            });
        }
    }
    out
}

/// Embeds images locally (decode + preprocess + encoder), as the server should.
pub fn embed_local(encoder: &Encoder, pngs: &[&[u8]]) -> Vec<Vec<f32>> {
    let pixels: Vec<_> = pngs
        .iter()
        .map(|b| {
            let img = ivt::image::decode(b, Default::default()).expect("decode");
            ivt::image::preprocess(&img, encoder.config()).expect("preprocess")
        })
        .collect();
    let refs: Vec<_> = pixels.iter().collect();
    encoder.embed_pixels(&refs).expect("embed")
}

/// Writes the gallery's PNGs into `dir/crops`, reads them back from disk, embeds them locally
/// and builds a real index in `dir/index`. Returns the index directory.
pub fn build_index(dir: &Path, images: &[GalleryImage], encoder: &Encoder) -> PathBuf {
    let crops = dir.join("crops");
    std::fs::create_dir_all(&crops).unwrap();
    let mut items = Vec::new();
    for img in images {
        let path = dir.join(img.record.path.as_deref().unwrap());
        std::fs::write(&path, &img.png).unwrap();
        let pixels = ivt::image::load(&path, encoder.config(), Default::default()).unwrap();
        let e = encoder.embed_pixels(&[&pixels]).unwrap().remove(0);
        items.push((img.record.clone(), e));
    }
    let index_dir = dir.join("index");
    let fingerprint = model_files().fingerprint().unwrap();
    let mut index = GalleryIndex::create(
        &index_dir,
        &fingerprint,
        encoder.dim(),
        HnswParams::default(),
    )
    .unwrap();
    index.add(items).unwrap();
    index_dir
}

/// A config for the tiny model on `index_dir`, with short shutdown timeouts for tests.
pub fn config(index_dir: &Path) -> ServiceConfig {
    let mut c = ServiceConfig::new(model_files(), index_dir.to_path_buf());
    c.shutdown_timeout = Duration::from_secs(10);
    c
}

/// Starts a server on 127.0.0.1:0 and loads it (SERVING when this returns).
pub async fn serve(config: ServiceConfig) -> RunningServer {
    let listener = ivt::service::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server = RunningServer::start(config, listener).await.unwrap();
    server.load().await.unwrap();
    server
}

/// Starts a server on 127.0.0.1:0 with the HTTP API on another 127.0.0.1:0 port, and loads
/// it. Returns the server and the HTTP base URL (`http://127.0.0.1:PORT`).
pub async fn serve_with_http(config: ServiceConfig) -> (RunningServer, String) {
    let server = start_with_http(config).await;
    server.0.load().await.unwrap();
    server
}

/// Like [`serve_with_http`] but not loaded: the API answers UNAVAILABLE.
pub async fn start_with_http(config: ServiceConfig) -> (RunningServer, String) {
    let bind = || ivt::service::bind("127.0.0.1:0".parse().unwrap());
    let server = RunningServer::start(config, bind().await.unwrap())
        .await
        .unwrap();
    let http = server.serve_http(bind().await.unwrap()).unwrap();
    (server, format!("http://{http}"))
}

/// A plaintext channel to `server`.
pub async fn channel(server: &RunningServer) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A retrieval client for `server`.
pub async fn client(server: &RunningServer) -> RetrievalClient<Channel> {
    RetrievalClient::new(channel(server).await)
}

/// Posts `len` bytes over a raw connection, writing and reading at once: the server refuses an
/// oversized body before reading it all, and a client that only reads after writing would see
/// the closed connection instead of the answer.
pub async fn oversized(
    base: &str,
    path: &str,
    len: usize,
) -> (reqwest::StatusCode, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {len}\r\nconnection: close\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        let _ = tx.write_all(head.as_bytes()).await;
        let _ = tx.write_all(&vec![b' '; len]).await;
        // Dropping the write half would half-close the connection, and the server closes a
        // connection whose client went away before it answers.
        std::future::pending::<()>().await;
    });
    let mut response = Vec::new();
    let _ = rx.read_to_end(&mut response).await;
    writer.abort();
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (
        reqwest::StatusCode::from_u16(status).unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

/// A codec that sends bytes as they are: a message no client library would encode.
#[derive(Clone, Copy, Default)]
pub struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = prost::bytes::Buf::remaining(src);
        Ok(Some(prost::bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// Calls `method` of `ivt.v1.Retrieval` with `bytes` as the request message.
pub async fn raw_call(
    channel: Channel,
    method: &'static str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(method);
    grpc.unary(tonic::Request::new(bytes), path, Raw)
        .await
        .map(tonic::Response::into_inner)
}

/// Dot product (cosine of unit vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Largest absolute difference between two vectors.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Texts used as queries.
pub const QUERIES: &[&str] = &[
    "a woman in a red coat carrying a black backpack",
    "a man wearing a white shirt, blue jeans and brown shoes",
    "the person has short black hair and a grey jacket",
    "a young girl in a yellow dress with white sneakers",
    "an old man with a walking stick and a dark green sweater",
    "a woman wearing glasses, a striped top and black trousers",
    "a man on a bicycle in an orange vest",
    "someone holding an umbrella, wearing a long beige coat",
];
