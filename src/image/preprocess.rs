//! Decoding with bounded memory, PIL-compatible bilinear resizing and normalisation.

use std::io::Cursor;
use std::path::Path;

use candle_core::{Device, Tensor};
use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageReader, RgbImage};

/// Errors a caller can cause with an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Zero bytes.
    #[error("image is empty (0 bytes)")]
    Empty,
    /// The bytes are not a JPEG, PNG, WebP or BMP file.
    #[error("unrecognised image format (expected JPEG, PNG, WebP or BMP)")]
    UnknownFormat,
    /// The decoder failed: corrupt or truncated data.
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// The image's declared size exceeds the limits (e.g. a decompression bomb).
    #[error("image too large: {0}")]
    TooLarge(String),
    /// The file could not be read.
    #[error("cannot read image {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Bounds on what a decoder may allocate, so that hostile images cannot exhaust memory.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted width or height in pixels.
    pub max_side: u32,
    /// Largest decoder allocation in bytes.
    pub max_alloc: u64,
    /// Most pixels (width x height, from the header, checked before decoding).
    pub max_pixels: u64,
}

/// Default pixel limit: 4096 x 4096, a 4K frame with room to spare; person crops are well
/// under 1 megapixel.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 24;

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_side: 16_384,
            max_alloc: 512 << 20,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// The image's width and height from its header alone (nothing is decoded), refusing an
/// image over `limits` so that a small file declaring a huge image costs nothing.
pub fn check_dimensions(bytes: &[u8], limits: DecodeLimits) -> Result<(u32, u32), ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ImageError::UnknownFormat);
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let pixels = u64::from(w) * u64::from(h);
    if w > limits.max_side || h > limits.max_side || pixels > limits.max_pixels {
        return Err(ImageError::TooLarge(format!(
            "{w}x{h} pixels; the limit is {} pixels ({} per side)",
            limits.max_pixels, limits.max_side
        )));
    }
    Ok((w, h))
}

/// A JPEG whose last scan has no end-of-image marker after it was cut short: the decoder
/// would fill the missing part with grey and succeed. (`FF D9` cannot occur inside
/// entropy-coded data, where `FF` is always followed by `00` or a restart marker, and an EXIF
/// thumbnail's own end marker comes before the main image's scans.)
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), ImageError> {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let ends = last_scan.is_some_and(|at| bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]));
    if !ends {
        return Err(ImageError::Decode(
            "truncated JPEG: no end-of-image marker after the last scan".into(),
        ));
    }
    Ok(())
}

/// A preprocessed image: normalised `f32` pixels in CHW order, ready to batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    /// `3 * height * width` values.
    pub data: Vec<f32>,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// Decodes JPEG, PNG, WebP or BMP bytes (greyscale, RGBA and 16-bit included) into 8-bit RGB.
/// Alpha is dropped, as PIL's `convert('RGB')` does.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, ImageError> {
    check_dimensions(bytes, limits)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    match reader.format() {
        None => return Err(ImageError::UnknownFormat),
        Some(image::ImageFormat::Jpeg) => check_jpeg_complete(bytes)?,
        Some(_) => {}
    }
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(e) => ImageError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => ImageError::Decode(e.to_string()),
        e => ImageError::Decode(e.to_string()),
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err(ImageError::Decode("image has no pixels".into()));
    }
    Ok(img.to_rgb8())
}

/// Resizes to `height x width` like PIL's bilinear filter (a triangle kernel widened by the
/// scale factor when shrinking, i.e. antialiased), on 8-bit values as PIL does.
pub fn resize_rgb(img: &RgbImage, height: usize, width: usize) -> Result<RgbImage, ImageError> {
    resize_with(img, height, width, FilterType::Bilinear)
}

/// Resizes with one of PIL's convolution filters (`Bilinear` = PIL `BILINEAR`, `CatmullRom` =
/// PIL `BICUBIC`), widened by the scale factor when shrinking, on 8-bit values as PIL does.
pub fn resize_with(
    img: &RgbImage,
    height: usize,
    width: usize,
    filter: FilterType,
) -> Result<RgbImage, ImageError> {
    let (w, h) = (width as u32, height as u32);
    if img.dimensions() == (w, h) {
        return Ok(img.clone());
    }
    let src = FirImage::from_vec_u8(
        img.width(),
        img.height(),
        img.as_raw().clone(),
        PixelType::U8x3,
    )
    .map_err(|e| ImageError::Decode(e.to_string()))?;
    let mut dst = FirImage::new(w, h, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    RgbImage::from_raw(w, h, dst.into_vec())
        .ok_or_else(|| ImageError::Decode("resize produced a short buffer".into()))
}

/// What a model takes as input image: its size and per-channel normalisation (the model's
/// configuration produces it: `IvtConfig::image_spec`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageSpec {
    /// `[height, width]` in pixels.
    pub size: [usize; 2],
    /// Per-channel mean subtracted after scaling pixels to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation dividing the centred pixels.
    pub std: [f32; 3],
}

/// Resizes to the spec's size, scales to [0, 1] and normalises with its `mean`/`std`, in CHW
/// order.
pub fn preprocess(img: &RgbImage, spec: &ImageSpec) -> Result<Pixels, ImageError> {
    let [h, w] = spec.size;
    let resized = resize_rgb(img, h, w)?;
    let plane = h * w;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in resized.pixels().enumerate() {
        for c in 0..3 {
            let v = px.0[c] as f32 / 255.0;
            data[c * plane + i] = (v - spec.mean[c]) / spec.std[c];
        }
    }
    Ok(Pixels {
        data,
        height: h,
        width: w,
    })
}

/// Reads, decodes and preprocesses an image file.
pub fn load(path: &Path, spec: &ImageSpec, limits: DecodeLimits) -> Result<Pixels, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.display().to_string(),
        source,
    })?;
    preprocess(&decode(&bytes, limits)?, spec)
}

/// Stacks preprocessed images of one size into a `[B, 3, H, W]` tensor.
pub fn to_tensor(images: &[&Pixels], device: &Device) -> candle_core::Result<Tensor> {
    let (h, w) = match images.first() {
        Some(p) => (p.height, p.width),
        None => candle_core::bail!("no images to batch"),
    };
    let mut data = Vec::with_capacity(images.len() * 3 * h * w);
    for p in images {
        if (p.height, p.width) != (h, w) {
            candle_core::bail!("images of different sizes in one batch");
        }
        data.extend_from_slice(&p.data);
    }
    Tensor::from_vec(data, (images.len(), 3, h, w), device)
}
