//! Everything around the person: the camera's street background, occluders in front, and the
//! camera's lighting, sensor noise and defocus over the finished crop.

use image::RgbImage;
use imageproc::drawing::{draw_filled_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;
use rand::Rng;

use super::paint::{jitter, rgb};
use crate::data::synth::person::Colour;

/// How one camera's footage looks: background palette and colour cast.
pub(super) struct CameraLook {
    wall: [f32; 3],
    ground: [f32; 3],
    horizon: f32,
    cast: [f32; 3],
}

/// The look of camera `camera` (1–6; others wrap around).
pub(super) fn camera_look(camera: u8) -> CameraLook {
    const WALLS: [[f32; 3]; 6] = [
        [150.0, 140.0, 130.0],
        [90.0, 100.0, 110.0],
        [170.0, 160.0, 120.0],
        [120.0, 90.0, 80.0],
        [200.0, 200.0, 205.0],
        [70.0, 80.0, 70.0],
    ];
    const GROUNDS: [[f32; 3]; 6] = [
        [110.0, 110.0, 110.0],
        [80.0, 80.0, 85.0],
        [150.0, 140.0, 125.0],
        [95.0, 95.0, 90.0],
        [170.0, 170.0, 165.0],
        [60.0, 65.0, 60.0],
    ];
    const CASTS: [[f32; 3]; 6] = [
        [1.0, 1.0, 1.0],
        [0.92, 0.97, 1.08],
        [1.08, 1.0, 0.9],
        [1.0, 1.05, 0.95],
        [1.05, 1.05, 1.05],
        [0.9, 0.92, 0.95],
    ];
    let i = (camera as usize).saturating_sub(1) % 6;
    CameraLook {
        wall: WALLS[i],
        ground: GROUNDS[i],
        horizon: 0.45 + 0.05 * (i % 3) as f32,
        cast: CASTS[i],
    }
}

/// Paints the street behind the person: wall and pavement, facade, joints and clutter.
pub(super) fn background<R: Rng>(img: &mut RgbImage, look: &CameraLook, rng: &mut R) {
    let h = img.height();
    let horizon = (look.horizon + rng.random_range(-0.08..0.08)) * h as f32;
    let wall = look.wall.map(|v| v + rng.random_range(-20.0..20.0));
    let ground = look.ground.map(|v| v + rng.random_range(-15.0..15.0));
    wall_and_ground(img, horizon, wall, ground);
    facade(img, horizon, wall, rng);
    pavement_joints(img, horizon, ground, rng);
    clutter(img, rng);
}

/// Wall above the horizon, ground below, each in a soft vertical gradient.
fn wall_and_ground(img: &mut RgbImage, horizon: f32, wall: [f32; 3], ground: [f32; 3]) {
    let h = img.height();
    for (_, y, p) in img.enumerate_pixels_mut() {
        let yf = y as f32;
        let base = if yf < horizon { wall } else { ground };
        // Light from above, pavement darker near the camera.
        let g = if yf < horizon {
            1.0 - 0.15 * yf / horizon.max(1.0)
        } else {
            0.9 + 0.15 * (yf - horizon) / (h as f32 - horizon).max(1.0)
        };
        *p = rgb(base.map(|v| v * g));
    }
}

/// Windows, doors and shop signs on the wall.
fn facade<R: Rng>(img: &mut RgbImage, horizon: f32, wall: [f32; 3], rng: &mut R) {
    let (w, h) = img.dimensions();
    for _ in 0..rng.random_range(2..7) {
        let rw = rng.random_range(4..(w / 2).max(5));
        let rh = rng.random_range(4..(h / 4).max(5));
        let x = rng.random_range(-(rw as i32) / 2..w as i32);
        let y = rng.random_range(0..(horizon as i32).max(1));
        let c = if rng.random_bool(0.6) {
            rgb(wall.map(|v| v * rng.random_range(0.5..0.8)))
        } else {
            let base = Colour::ALL[rng.random_range(0..Colour::ALL.len())].rgb();
            jitter(rng, base, 30.0)
        };
        draw_filled_rect_mut(img, Rect::at(x, y).of_size(rw, rh), c);
    }
}

/// Slanted joints across the pavement.
fn pavement_joints<R: Rng>(img: &mut RgbImage, horizon: f32, ground: [f32; 3], rng: &mut R) {
    let (w, h) = img.dimensions();
    let step = rng.random_range(8..20);
    let mut y = horizon as u32 + step;
    while y < h {
        let c = rgb(ground.map(|v| v * 0.8));
        draw_line_segment_mut(img, (0.0, y as f32), (w as f32, y as f32 + 3.0), c);
        y += step;
    }
}

/// Poles, bins, parked bikes.
fn clutter<R: Rng>(img: &mut RgbImage, rng: &mut R) {
    let (w, h) = img.dimensions();
    for _ in 0..rng.random_range(0..3) {
        let x = rng.random_range(0..w) as i32;
        let pw = rng.random_range(2..6);
        let top = rng.random_range(0..(h / 2).max(1)) as i32;
        let c = jitter(rng, [90, 90, 95], 30.0);
        draw_filled_rect_mut(
            img,
            Rect::at(x, top).of_size(pw, h.saturating_sub(top as u32).max(1)),
            c,
        );
    }
}

/// Something between the camera and the person: a car or bin, a pole or passer-by, a box.
pub(super) fn occluder<R: Rng>(img: &mut RgbImage, rng: &mut R) {
    let (w, h) = img.dimensions();
    let base = Colour::ALL[rng.random_range(0..Colour::ALL.len())].rgb();
    let c = jitter(rng, base, 40.0);
    match rng.random_range(0..3) {
        // A parked car or bin across the bottom.
        0 => {
            let oh = rng.random_range(h / 8..h / 4).max(1);
            draw_filled_rect_mut(img, Rect::at(0, (h - oh) as i32).of_size(w, oh), c);
        }
        // A pole or a passer-by at one side.
        1 => {
            let ow = rng.random_range(w / 8..w / 4).max(1);
            let x = if rng.random_bool(0.5) {
                0
            } else {
                (w - ow) as i32
            };
            draw_filled_rect_mut(img, Rect::at(x, 0).of_size(ow, h), c);
        }
        _ => {
            let ow = rng.random_range(w / 4..w / 2).max(1);
            let oh = rng.random_range(h / 8..h / 4).max(1);
            let x = rng.random_range(0..(w - ow).max(1)) as i32;
            let y = rng.random_range(h / 2..(h - oh).max(h / 2 + 1)) as i32;
            draw_filled_rect_mut(img, Rect::at(x, y).of_size(ow, oh), c);
        }
    }
}

/// The camera over the whole crop: lighting and colour cast, sensor noise, sometimes defocus.
pub(super) fn expose<R: Rng>(mut img: RgbImage, look: &CameraLook, rng: &mut R) -> RgbImage {
    let light = rng.random_range(0.65..1.25f32);
    let cast = look
        .cast
        .map(|c| c * light * rng.random_range(0.95..1.05f32));
    let noise = rng.random_range(1.0..7.0f32);
    for p in img.pixels_mut() {
        for (v, c) in p.0.iter_mut().zip(cast) {
            let n = (rng.random::<f32>() + rng.random::<f32>() + rng.random::<f32>() - 1.5) * 2.0;
            *v = (*v as f32 * c + n * noise).clamp(0.0, 255.0) as u8;
        }
    }
    if rng.random_bool(0.3) {
        img = image::imageops::fast_blur(&img, rng.random_range(0.4..1.2));
    }
    img
}
