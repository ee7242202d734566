//! The network against the authors' PyTorch outputs (`../shared/golden/model-tiny-*`, copied to
//! tests/fixtures): every token output and every embedding within 1e-4, for the `.pth` checkpoint
//! (s16, DDP `module.` prefixes, training-only tensors) and the safetensors one (s12).

mod common;
use common::{fixture, max_abs_diff};

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ivt::image::{self, DecodeLimits};
use ivt::model::{load_network, Encoder, Modality, ModelFiles, Pass, TrainOptions};
use ivt::text::TextTokenizer;

fn load(dir: &str, dtype: DType) -> (Encoder, HashMap<String, Tensor>, serde_json::Value) {
    let files = ModelFiles::resolve(&fixture(dir), None).expect("resolve");
    let enc = Encoder::load(&files, &Device::Cpu, dtype).expect("load");
    let out =
        candle_core::safetensors::load(fixture(dir).join("outputs.safetensors"), &Device::Cpu)
            .expect("outputs");
    let text: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(dir).join("text.json")).unwrap())
            .unwrap();
    (enc, out, text)
}

fn captions(text: &serde_json::Value) -> Vec<String> {
    text["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// The golden PNGs through our decoding and preprocessing.
fn pixels(dir: &str, enc: &Encoder) -> Vec<image::Pixels> {
    (0..4)
        .map(|i| {
            image::load(
                &fixture(dir).join(format!("image{i}.png")),
                &enc.config().image_spec(),
                DecodeLimits::default(),
            )
            .unwrap()
        })
        .collect()
}

/// Token 0 of `[B, N, D]` tokens: `[B, D]`.
fn class_tokens(tokens: &Tensor) -> Tensor {
    tokens.narrow(1, 0, 1).unwrap().squeeze(1).unwrap()
}

fn check_model(dir: &str) {
    let (enc, out, text) = load(dir, DType::F32);
    // Tokenizer: the shipped vocabulary gives the golden ids.
    let caps = captions(&text);
    let golden_ids = text["input_ids"].as_array().unwrap();
    let toks: Vec<_> = caps.iter().map(|c| enc.tokenize(c).unwrap()).collect();
    for (t, g) in toks.iter().zip(golden_ids) {
        let g: Vec<u32> = g
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .filter(|&v| v != 0)
            .collect();
        assert_eq!(t.ids, g);
        assert!(!t.truncated);
    }

    // Text tokens of the padded batch.
    let refs: Vec<_> = toks.iter().collect();
    let tokens = enc.text_tokens(&refs).unwrap();
    let d = max_abs_diff(&tokens, &out["text_tokens"]);
    assert!(d < 1e-4, "{dir}: text tokens differ by {d}");
    let emb = Tensor::new(enc.embed_tokenized(&refs).unwrap(), &Device::Cpu).unwrap();
    let d = max_abs_diff(&emb, &out["text_embeddings_normalized"]);
    assert!(d < 1e-4, "{dir}: text embeddings differ by {d}");

    // One caption at a time gives the same embedding as the padded batch.
    for (i, t) in toks.iter().enumerate() {
        let single = enc.embed_tokenized(&[t]).unwrap();
        let single = Tensor::new(single[0].as_slice(), &Device::Cpu).unwrap();
        let d = max_abs_diff(&single, &emb.get(i).unwrap());
        assert!(
            d < 1e-5,
            "{dir}: caption {i} alone differs from batch by {d}"
        );
    }

    // Images: the PNGs through our preprocessing give the golden inputs and outputs.
    let inputs =
        candle_core::safetensors::load(fixture(dir).join("inputs.safetensors"), &Device::Cpu)
            .unwrap();
    let pixels = pixels(dir, &enc);
    let refs: Vec<_> = pixels.iter().collect();
    let x = image::to_tensor(&refs, &Device::Cpu).unwrap();
    assert!(max_abs_diff(&x, &inputs["images"]) < 1e-6);
    let tokens = enc.image_tokens(&refs).unwrap();
    // A batch larger than one CPU pass takes (it runs in sub-batches) gives every image the
    // tokens it gets in the small batch.
    let many: Vec<_> = refs.iter().cycle().take(40 * refs.len()).copied().collect();
    let d = max_abs_diff(
        &enc.image_tokens(&many).unwrap(),
        &Tensor::cat(&vec![&tokens; 40], 0).unwrap(),
    );
    assert!(d < 1e-5, "{dir}: image tokens in sub-batches differ by {d}");
    let d = max_abs_diff(&tokens, &out["image_tokens"]);
    assert!(d < 1e-4, "{dir}: image tokens differ by {d}");
    // The training forward pass (patches gathered and multiplied instead of convolved,
    // differentiable norms and softmax, regularisers off) gives the same tokens, on the network
    // as training loads it (unpacked weights).
    let files = ModelFiles::resolve(&fixture(dir), None).expect("resolve");
    let model = load_network(&files, &Device::Cpu, DType::F32).expect("load");
    let train_tokens = model
        .encode(
            &model.embed_image_for_training(&x).unwrap(),
            None,
            Modality::Image,
            Pass::Train(&TrainOptions::default()),
        )
        .unwrap();
    let d = max_abs_diff(&train_tokens, &out["image_tokens"]);
    assert!(d < 1e-4, "{dir}: training-path image tokens differ by {d}");
    // Only the class token through the last block, on candle's composed operations (the code
    // GPUs run): the golden class tokens, for images and for the padded, masked texts.
    let composed = Pass::Train(&TrainOptions::default());
    let image_patches = model.embed_image_for_training(&x).unwrap();
    let cls = model
        .encode_cls(&image_patches, None, Modality::Image, composed)
        .unwrap();
    let d = max_abs_diff(&cls, &class_tokens(&out["image_tokens"]));
    assert!(d < 1e-4, "{dir}: composed image class tokens differ by {d}");
    let batch = TextTokenizer::batch(&toks.iter().collect::<Vec<_>>(), &Device::Cpu).unwrap();
    let text_embedded = model.embed_text(&batch.input_ids).unwrap();
    let mask = Some(&batch.attention_mask);
    let cls = model
        .encode_cls(&text_embedded, mask, Modality::Text, composed)
        .unwrap();
    let d = max_abs_diff(&cls, &class_tokens(&out["text_tokens"]));
    assert!(d < 1e-4, "{dir}: composed text class tokens differ by {d}");
    let emb = Tensor::new(enc.embed_pixels(&refs).unwrap(), &Device::Cpu).unwrap();
    let d = max_abs_diff(&emb, &out["image_embeddings_normalized"]);
    assert!(d < 1e-4, "{dir}: image embeddings differ by {d}");
    for (i, p) in pixels.iter().enumerate() {
        let single = Tensor::new(enc.embed_pixels(&[p]).unwrap(), &Device::Cpu).unwrap();
        let d = max_abs_diff(&single.get(0).unwrap(), &emb.get(i).unwrap());
        assert!(d < 1e-5, "{dir}: image {i} alone differs from batch by {d}");
    }
}

#[test]
fn pth_checkpoint_with_ddp_prefixes_matches_pytorch() {
    check_model("model-tiny-s16");
}

#[test]
fn safetensors_checkpoint_matches_pytorch() {
    check_model("model-tiny-s12");
}

/// The opt-in reduced-precision CPU mode (`--dtype bf16`: the AVX512-BF16 kernels, or MKL's in
/// MKL builds): bf16 products over f32 weights stay within cosine 0.999 of the authors'
/// embeddings and rank every caption's images in the same order.
#[test]
fn bf16_products_on_cpu_keep_embeddings_and_rankings() {
    use ivt::text::Tokenized;
    #[cfg(target_arch = "x86_64")]
    let kernels = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16");
    #[cfg(not(target_arch = "x86_64"))]
    let kernels = false;
    if !cfg!(feature = "mkl") && !kernels {
        eprintln!("skipped: this CPU has no AVX512-BF16 (bf16 falls back to f32)");
        return;
    }
    for dir in ["model-tiny-s16", "model-tiny-s12"] {
        let (enc, out, text) = load(dir, DType::BF16);
        assert_eq!(enc.model().dtype(), DType::F32, "weights stay f32");
        let caps = captions(&text);
        let toks: Vec<Tokenized> = caps.iter().map(|c| enc.tokenize(c).unwrap()).collect();
        let texts = enc
            .embed_tokenized(&toks.iter().collect::<Vec<_>>())
            .unwrap();
        let pixels = pixels(dir, &enc);
        let images = enc
            .embed_pixels(&pixels.iter().collect::<Vec<_>>())
            .unwrap();
        let golden_texts = out["text_embeddings_normalized"].to_vec2::<f32>().unwrap();
        let golden_images = out["image_embeddings_normalized"].to_vec2::<f32>().unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let mut exact = true;
        for (got, want) in texts
            .iter()
            .zip(&golden_texts)
            .chain(images.iter().zip(&golden_images))
        {
            let cos = dot(got, want);
            assert!(cos >= 0.999, "{dir}: bf16 cosine to f32 is {cos}");
            exact &= got == want;
        }
        assert!(
            !exact,
            "{dir}: bf16 products gave bit-exact f32 results: not in use?"
        );
        let order = |t: &[f32], imgs: &[Vec<f32>]| {
            let mut idx: Vec<usize> = (0..imgs.len()).collect();
            idx.sort_by(|&a, &b| dot(t, &imgs[b]).total_cmp(&dot(t, &imgs[a])));
            idx
        };
        for (t, g) in texts.iter().zip(&golden_texts) {
            assert_eq!(
                order(t, &images),
                order(g, &golden_images),
                "{dir}: ranking changed"
            );
        }
    }
}
