//! Thumbnails of gallery images for `GET /v1/images/{image_id}`. The file is the one the index
//! records for that id (never a path from the request), and it is decoded and re-encoded as a
//! JPEG, so only image content leaves the server, whatever the file holds.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};

use super::super::ServiceError;
use crate::image::{decode, DecodeLimits};

/// Longest side of a thumbnail: person crops are shown at card size, not full resolution.
pub const MAX_SIDE: u32 = 256;

/// A JPEG thumbnail of the image file of gallery image `image_id`. Blocking.
pub fn thumbnail(image_id: &str, path: Option<&str>) -> Result<Vec<u8>, ServiceError> {
    let unavailable = |why: String| {
        tracing::warn!(image_id, %why, "thumbnail unavailable");
        ServiceError::NotFound(format!("image `{image_id}` has no readable file: {why}"))
    };
    let path = path
        .filter(|p| !p.contains("://"))
        .ok_or_else(|| unavailable("the index records no local file".into()))?;
    let bytes = std::fs::read(Path::new(path)).map_err(|e| unavailable(e.to_string()))?;
    let rgb = decode(&bytes, DecodeLimits::default()).map_err(|e| unavailable(e.to_string()))?;
    let mut img = DynamicImage::ImageRgb8(rgb);
    if img.width() > MAX_SIDE || img.height() > MAX_SIDE {
        img = img.resize(MAX_SIDE, MAX_SIDE, FilterType::Triangle);
    }
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg)
        .map_err(|e| ServiceError::Internal(format!("encoding a thumbnail: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_images_shrink_and_non_images_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.png");
        image::RgbImage::new(100, 600).save(&big).unwrap();
        let jpeg = thumbnail("big", big.to_str()).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (43, 256));
        let text = dir.path().join("secret.txt");
        std::fs::write(&text, "not an image").unwrap();
        for path in [
            text.to_str(),
            Some("/no/such/file.png"),
            Some("s3://b/k.jpg"),
            None,
        ] {
            let e = thumbnail("x", path).unwrap_err();
            assert!(matches!(e, ServiceError::NotFound(_)), "{e}");
        }
    }
}
