//! Image preprocessing: decoding person crops and turning them into the model's input, exactly
//! as the authors' evaluation loader (PIL `convert('RGB')`, `T.Resize` bilinear with antialiasing,
//! `ToTensor`, `Normalize(mean, std)`).

mod preprocess;

pub use preprocess::{
    check_dimensions, decode, load, preprocess, resize_rgb, resize_with, to_tensor, DecodeLimits,
    ImageError, ImageSpec, Pixels, DEFAULT_MAX_PIXELS,
};
