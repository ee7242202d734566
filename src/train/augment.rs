//! Training augmentation of person crops, as the authors' training transform: resize (bicubic),
//! pad 10, random crop back, horizontal flip (p = 0.5), normalise, random erasing (p = 0.5,
//! normal noise in one rectangle of 2%–33% of the area, aspect 0.3–3.3).

use fast_image_resize::FilterType;
use image::RgbImage;
use rand::Rng;

use crate::image::{ImageError, Pixels};
use crate::model::IvtConfig;

/// Augmentation settings; the defaults are the authors'.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentOptions {
    /// Zero padding on every side before the random crop.
    pub pad: usize,
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Probability of random erasing.
    pub erase: f64,
    /// Erased area as a fraction of the image: `[min, max]`.
    pub erase_area: (f64, f64),
    /// Aspect ratio range of the erased rectangle.
    pub erase_aspect: (f64, f64),
}

impl Default for AugmentOptions {
    fn default() -> Self {
        Self {
            pad: 10,
            flip: 0.5,
            erase: 0.5,
            erase_area: (0.02, 0.33),
            erase_aspect: (0.3, 3.3),
        }
    }
}

/// One augmented view of `img`, normalised for `cfg`.
pub fn augment<R: Rng>(
    img: &RgbImage,
    cfg: &IvtConfig,
    opts: &AugmentOptions,
    rng: &mut R,
) -> Result<Pixels, ImageError> {
    let [h, w] = cfg.image_size;
    let resized = resize_bicubic(img, h, w)?;
    // Padding then cropping back is a shift by (dy, dx) with zeros (black) shifted in.
    let dy = rng.random_range(0..=2 * opts.pad) as isize - opts.pad as isize;
    let dx = rng.random_range(0..=2 * opts.pad) as isize - opts.pad as isize;
    let flip = rng.random_bool(opts.flip.clamp(0.0, 1.0));
    let plane = h * w;
    let mut data = vec![0f32; 3 * plane];
    for y in 0..h {
        for x in 0..w {
            let sx = if flip { w - 1 - x } else { x } as isize + dx;
            let sy = y as isize + dy;
            let inside = sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h;
            let px = if inside {
                resized.get_pixel(sx as u32, sy as u32).0
            } else {
                [0, 0, 0]
            };
            for c in 0..3 {
                let v = f32::from(px[c]) / 255.0;
                data[c * plane + y * w + x] = (v - cfg.pixel_mean[c]) / cfg.pixel_std[c];
            }
        }
    }
    if rng.random_bool(opts.erase.clamp(0.0, 1.0)) {
        random_erase(&mut data, h, w, opts, rng);
    }
    Ok(Pixels {
        data,
        height: h,
        width: w,
    })
}

/// torchvision's `RandomErasing(value='random')`: up to 10 tries to place a rectangle of random
/// area and log-uniform aspect; its pixels become standard normal noise.
fn random_erase<R: Rng>(data: &mut [f32], h: usize, w: usize, opts: &AugmentOptions, rng: &mut R) {
    let area = (h * w) as f64;
    let (lo, hi) = (opts.erase_aspect.0.ln(), opts.erase_aspect.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(opts.erase_area.0..=opts.erase_area.1);
        let aspect = rng.random_range(lo..=hi).exp();
        let eh = (target * aspect).sqrt().round() as usize;
        let ew = (target / aspect).sqrt().round() as usize;
        if eh == 0 || ew == 0 || eh >= h || ew >= w {
            continue;
        }
        let top = rng.random_range(0..=h - eh);
        let left = rng.random_range(0..=w - ew);
        for c in 0..3 {
            for y in top..top + eh {
                for x in left..left + ew {
                    data[c * h * w + y * w + x] = standard_normal(rng);
                }
            }
        }
        return;
    }
}

/// A standard normal sample (Box–Muller).
fn standard_normal<R: Rng>(rng: &mut R) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Bicubic (Catmull-Rom, PIL's `BICUBIC` kernel) resize to `height x width`.
pub fn resize_bicubic(img: &RgbImage, height: usize, width: usize) -> Result<RgbImage, ImageError> {
    crate::image::resize_with(img, height, width, FilterType::CatmullRom)
}
