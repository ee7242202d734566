//! Image preprocessing against torchvision/PIL (`../shared/golden/preprocess`): `T.Resize((384,128))`
//! bilinear with antialiasing, `ToTensor`, `Normalize(0.5, 0.5)`; and decoding of every accepted
//! pixel layout.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::Device;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgba};
use ivt::image::{decode, load, preprocess, DecodeLimits};
use ivt::model::IvtConfig;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preprocess")
        .join(p)
}

/// Largest and mean absolute difference of our pixels from PIL's, in 8-bit levels before
/// normalisation (std 0.5, so one level is 2/255 after it).
fn diff_levels(file: &str, key: &str) -> (f32, f32) {
    let expected =
        candle_core::safetensors::load(fixture("expected_384x128.safetensors"), &Device::Cpu)
            .unwrap();
    let want = expected[key]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let got = load(
        &fixture(file),
        &IvtConfig::ivt_base().image_spec(),
        DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!((got.height, got.width), (384, 128));
    assert_eq!(got.data.len(), want.len());
    let diffs: Vec<f32> = got
        .data
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() * 0.5 * 255.0)
        .collect();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    (max, diffs.iter().sum::<f32>() / diffs.len() as f32)
}

#[test]
fn png_photos_match_pil_within_one_level() {
    // Shrinking (antialiased), greyscale → RGB, and upscaling a small crop.
    for (file, key) in [
        ("astronaut.png", "astronaut"),
        ("camera_gray.png", "camera_gray"),
        ("tiny_person.png", "tiny_person"),
    ] {
        let (max, mean) = diff_levels(file, key);
        assert!(
            max <= 1.0 + 1e-3,
            "{file}: max diff {max} levels (mean {mean})"
        );
    }
}

#[test]
fn jpeg_photo_matches_pil_up_to_decoder_differences() {
    // JPEG decoders (libjpeg vs zune-jpeg) legitimately differ by a few levels.
    let (max, mean) = diff_levels("astronaut_crop.jpg", "astronaut_crop");
    assert!(mean < 1.0, "mean diff {mean} levels");
    assert!(max <= 8.0, "max diff {max} levels");
}

fn encode(img: DynamicImage, fmt: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, fmt).unwrap();
    buf.into_inner()
}

#[test]
fn greyscale_rgba_and_16_bit_images_become_rgb() {
    let grey = ImageBuffer::from_fn(8, 4, |x, _| Luma([(x * 30) as u8]));
    let rgb = decode(
        &encode(DynamicImage::ImageLuma8(grey), ImageFormat::Png),
        DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(rgb.get_pixel(3, 1).0, [90, 90, 90]);

    let rgba = ImageBuffer::from_fn(4, 4, |_, _| Rgba([200u8, 10, 20, 0]));
    let rgb = decode(
        &encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
        DecodeLimits::default(),
    )
    .unwrap();
    // Alpha is dropped, not composited (PIL's convert('RGB')).
    assert_eq!(rgb.get_pixel(0, 0).0, [200, 10, 20]);

    let deep = ImageBuffer::from_fn(4, 4, |_, _| Luma([65535u16]));
    let rgb = decode(
        &encode(DynamicImage::ImageLuma16(deep), ImageFormat::Png),
        DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(rgb.get_pixel(2, 2).0, [255, 255, 255]);

    for fmt in [ImageFormat::Bmp, ImageFormat::WebP, ImageFormat::Jpeg] {
        let img =
            DynamicImage::ImageRgb8(ImageBuffer::from_pixel(16, 8, image::Rgb([120u8, 60, 30])));
        let rgb = decode(&encode(img, fmt), DecodeLimits::default()).unwrap();
        assert_eq!(rgb.dimensions(), (16, 8), "{fmt:?}");
        let px = rgb.get_pixel(5, 5).0;
        assert!(
            px.iter()
                .zip([120u8, 60, 30])
                .all(|(a, b)| a.abs_diff(b) <= 3),
            "{fmt:?}: {px:?}"
        );
    }
}

#[test]
fn normalisation_uses_the_configs_mean_and_std() {
    let mut cfg = IvtConfig::ivt_base();
    cfg.image_size = [4, 2];
    cfg.pixel_mean = [0.485, 0.456, 0.406];
    cfg.pixel_std = [0.229, 0.224, 0.225];
    let img = ImageBuffer::from_pixel(2, 4, image::Rgb([255u8, 0, 51]));
    let px = preprocess(&img, &cfg.image_spec()).unwrap();
    let plane = 8;
    assert!((px.data[0] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
    assert!((px.data[plane] - (0.0 - 0.456) / 0.224).abs() < 1e-5);
    assert!((px.data[2 * plane] - (0.2 - 0.406) / 0.225).abs() < 1e-5);
}
