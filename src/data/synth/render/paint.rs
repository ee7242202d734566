//! Colour helpers and the [`Painter`] that draws shapes in person coordinates.

use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_ellipse_mut, draw_filled_rect_mut, draw_line_segment_mut, draw_polygon_mut,
};
use imageproc::point::Point;
use imageproc::rect::Rect;
use rand::Rng;

/// An RGB pixel from float channels, clamped to 0–255.
pub(super) fn rgb(c: [f32; 3]) -> Rgb<u8> {
    Rgb(c.map(|v| v.clamp(0.0, 255.0) as u8))
}

/// `c` with each channel moved by up to ±`amount`: no two images share an exact shade.
pub(super) fn jitter<R: Rng>(rng: &mut R, c: [u8; 3], amount: f32) -> Rgb<u8> {
    rgb(c.map(|v| v as f32 + rng.random_range(-amount..=amount)))
}

/// `c` scaled by `f` (seams, straps, shadows).
pub(super) fn darker(c: Rgb<u8>, f: f32) -> Rgb<u8> {
    rgb(c.0.map(|v| v as f32 * f))
}

/// Paints in person coordinates: `x` in person heights from the body axis (positive = the
/// image's right), `y` in person heights from the top of the head.
pub(super) struct Painter<'a> {
    pub(super) img: &'a mut RgbImage,
    pub(super) cx: f32,
    pub(super) top: f32,
    pub(super) h: f32,
}

impl Painter<'_> {
    fn px(&self, x: f32, y: f32) -> (f32, f32) {
        (self.cx + x * self.h, self.top + y * self.h)
    }

    pub(super) fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: Rgb<u8>) {
        let (a, b) = self.px(x0.min(x1), y0.min(y1));
        let (d, e) = self.px(x0.max(x1), y0.max(y1));
        let w = (d - a).round().max(1.0) as u32;
        let h = (e - b).round().max(1.0) as u32;
        draw_filled_rect_mut(
            self.img,
            Rect::at(a.round() as i32, b.round() as i32).of_size(w, h),
            c,
        );
    }

    pub(super) fn ellipse(&mut self, x: f32, y: f32, rx: f32, ry: f32, c: Rgb<u8>) {
        let (px, py) = self.px(x, y);
        let rx = (rx * self.h).round().max(1.0) as i32;
        let ry = (ry * self.h).round().max(1.0) as i32;
        draw_filled_ellipse_mut(self.img, (px.round() as i32, py.round() as i32), rx, ry, c);
    }

    pub(super) fn poly(&mut self, points: &[(f32, f32)], c: Rgb<u8>) {
        let mut pts: Vec<Point<i32>> = Vec::with_capacity(points.len());
        for &(x, y) in points {
            let (a, b) = self.px(x, y);
            let p = Point::new(a.round() as i32, b.round() as i32);
            if pts.last() != Some(&p) {
                pts.push(p);
            }
        }
        while pts.len() > 1 && pts.first() == pts.last() {
            pts.pop();
        }
        if pts.len() >= 3 {
            draw_polygon_mut(self.img, &pts, c);
        } else if let (Some(a), Some(b)) = (pts.first(), pts.last()) {
            let (a, b) = ((a.x as f32, a.y as f32), (b.x as f32, b.y as f32));
            draw_line_segment_mut(self.img, a, b, c);
        }
    }

    pub(super) fn line(&mut self, a: (f32, f32), b: (f32, f32), width: f32, c: Rgb<u8>) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-6);
        let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
        self.poly(
            &[
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ],
            c,
        );
    }
}
