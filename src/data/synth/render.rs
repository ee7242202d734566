//! Draws a synthetic person crop: a street background for the camera, the person in a
//! viewpoint and pose, occluders, then lighting, blur and sensor noise.

use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_ellipse_mut, draw_filled_rect_mut, draw_line_segment_mut, draw_polygon_mut,
};
use imageproc::point::Point;
use imageproc::rect::Rect;
use rand::Rng;

use super::person::{
    BagKind, Build, Colour, HairLength, HairStyle, HatKind, LowerKind, Pattern, Person, Side,
    UpperKind, SKIN,
};

/// Where the camera sees the person from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// Facing the camera.
    Front,
    /// Walking away: backpacks show, logos and faces do not.
    Back,
    /// In profile; `true` when facing the image's right.
    Side(bool),
}

impl View {
    /// A short name for metadata.
    pub fn name(self) -> &'static str {
        match self {
            View::Front => "front",
            View::Back => "back",
            View::Side(_) => "side",
        }
    }
}

/// How one camera's footage looks: background palette and colour cast.
struct CameraLook {
    wall: [f32; 3],
    ground: [f32; 3],
    horizon: f32,
    cast: [f32; 3],
}

fn camera_look(camera: u8) -> CameraLook {
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

fn rgb(c: [f32; 3]) -> Rgb<u8> {
    Rgb(c.map(|v| v.clamp(0.0, 255.0) as u8))
}

fn jitter<R: Rng>(rng: &mut R, c: [u8; 3], amount: f32) -> Rgb<u8> {
    rgb(c.map(|v| v as f32 + rng.random_range(-amount..=amount)))
}

fn darker(c: Rgb<u8>, f: f32) -> Rgb<u8> {
    rgb(c.0.map(|v| v as f32 * f))
}

/// Paints in person coordinates: `x` in person heights from the body axis (positive = the
/// image's right), `y` in person heights from the top of the head.
struct Painter<'a> {
    img: &'a mut RgbImage,
    cx: f32,
    top: f32,
    h: f32,
}

impl Painter<'_> {
    fn px(&self, x: f32, y: f32) -> (f32, f32) {
        (self.cx + x * self.h, self.top + y * self.h)
    }

    fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: Rgb<u8>) {
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

    fn ellipse(&mut self, x: f32, y: f32, rx: f32, ry: f32, c: Rgb<u8>) {
        let (px, py) = self.px(x, y);
        let rx = (rx * self.h).round().max(1.0) as i32;
        let ry = (ry * self.h).round().max(1.0) as i32;
        draw_filled_ellipse_mut(self.img, (px.round() as i32, py.round() as i32), rx, ry, c);
    }

    fn poly(&mut self, points: &[(f32, f32)], c: Rgb<u8>) {
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

    fn line(&mut self, a: (f32, f32), b: (f32, f32), width: f32, c: Rgb<u8>) {
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

fn background<R: Rng>(img: &mut RgbImage, look: &CameraLook, rng: &mut R) {
    let (w, h) = img.dimensions();
    let horizon = (look.horizon + rng.random_range(-0.08..0.08)) * h as f32;
    let wall = look.wall.map(|v| v + rng.random_range(-20.0..20.0));
    let ground = look.ground.map(|v| v + rng.random_range(-15.0..15.0));
    for (_, y, p) in img.enumerate_pixels_mut() {
        let yf = y as f32;
        let base = if yf < horizon { wall } else { ground };
        // A soft vertical gradient: light from above, pavement darker near the camera.
        let g = if yf < horizon {
            1.0 - 0.15 * yf / horizon.max(1.0)
        } else {
            0.9 + 0.15 * (yf - horizon) / (h as f32 - horizon).max(1.0)
        };
        *p = rgb(base.map(|v| v * g));
    }
    // Facade: windows, doors, shop signs.
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
    // Pavement joints.
    let step = rng.random_range(8..20);
    let mut y = horizon as u32 + step;
    while y < h {
        let c = rgb(ground.map(|v| v * 0.8));
        draw_line_segment_mut(img, (0.0, y as f32), (w as f32, y as f32 + 3.0), c);
        y += step;
    }
    // Clutter: poles, bins, parked bikes.
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

/// Walking pose of one image.
struct Pose {
    stride: f32,
    swing: f32,
}

fn hair_colour(p: &Person) -> [u8; 3] {
    match p.hair_colour {
        Colour::Yellow => [220, 190, 110],
        Colour::Red => [160, 70, 30],
        Colour::Grey => [170, 170, 170],
        c => c.rgb(),
    }
}

fn person<R: Rng>(pt: &mut Painter, p: &Person, view: View, pose: &Pose, rng: &mut R) {
    let child = p.build == Build::Child;
    let skin = jitter(rng, SKIN[p.skin as usize % SKIN.len()], 6.0);
    let hair_c = jitter(rng, hair_colour(p), 10.0);
    let upper_c = jitter(rng, p.upper_colour.rgb(), 12.0);
    let lower_c = jitter(rng, p.lower_colour.rgb(), 12.0);
    let shoe_c = jitter(rng, p.shoes.rgb(), 10.0);
    let side = matches!(view, View::Side(_));
    // Facing direction in side view: +1 = image right.
    let facing = match view {
        View::Side(true) => 1.0,
        View::Side(false) => -1.0,
        _ => 0.0,
    };
    let head_r = if child { 0.08 } else { 0.062 };
    let head_y = head_r + 0.005;
    let neck = head_y + head_r;
    let shoulder = neck + 0.02;
    let hip = if child { 0.56 } else { 0.5 };
    let widen = if side { 0.55 } else { 1.0 };
    let sw = match p.build {
        Build::Man => 0.13,
        Build::Woman => 0.11,
        Build::Child => 0.12,
    } * widen;
    let hw = match p.build {
        Build::Man => 0.1,
        Build::Woman => 0.11,
        Build::Child => 0.1,
    } * widen;
    let leg_w = 0.045;
    let knee = hip + (0.95 - hip) * 0.45;
    let feet = 0.96;

    // Which image side the person's own left is on: mirrored when facing the camera.
    let own = |s: Side| -> f32 {
        let left = match view {
            View::Front => 1.0,
            View::Back => -1.0,
            View::Side(_) => -facing,
        };
        if s == Side::Left {
            left
        } else {
            -left
        }
    };

    // Umbrella behind everything above the head.
    if let Some(c) = p.umbrella {
        let c = jitter(rng, c.rgb(), 10.0);
        let hx = 0.12 * if side { facing } else { 1.0 };
        let mut dome = Vec::new();
        for i in 0..=12 {
            let a = std::f32::consts::PI * i as f32 / 12.0;
            dome.push((hx * 0.4 + 0.22 * a.cos(), 0.02 - 0.09 * a.sin()));
        }
        pt.poly(&dome, c);
        pt.line(
            (hx * 0.4, 0.02),
            (hx, hip - 0.05),
            0.012,
            rgb([40.0, 40.0, 40.0]),
        );
    }
    // Long hair falls behind the shoulders.
    if p.hair_length == HairLength::Long && p.hair_style == HairStyle::Loose {
        let back = if side { -facing * head_r * 0.6 } else { 0.0 };
        pt.rect(
            back - head_r * 1.1,
            head_y - head_r * 0.3,
            back + head_r * 1.1,
            shoulder + 0.1,
            hair_c,
        );
    }
    // A backpack seen from the side sticks out behind the back.
    if let Some(bag) = p.bag.filter(|b| b.kind == BagKind::Backpack && side) {
        let c = jitter(rng, bag.colour.rgb(), 10.0);
        let b = -facing;
        pt.rect(
            b * sw * 0.8,
            shoulder + 0.02,
            b * (sw + 0.09),
            hip - 0.08,
            c,
        );
    }

    // Legs (trousers, or skin under shorts and skirts), then shoes.
    let leg_top_c = lower_c;
    let leg_low_c = match p.lower {
        LowerKind::Trousers | LowerKind::Jeans => lower_c,
        LowerKind::Shorts | LowerKind::Skirt => skin,
    };
    let spread = if side { 0.0 } else { hw * 0.5 };
    for (i, dir) in [-1.0f32, 1.0].into_iter().enumerate() {
        let hx = dir * spread;
        let fx =
            hx + if side { facing } else { 1.0 } * pose.stride * if i == 0 { 1.0 } else { -1.0 };
        let kx = (hx + fx) / 2.0;
        let cut = match p.lower {
            LowerKind::Shorts => hip + (knee - hip) * 0.9,
            _ => feet,
        };
        pt.poly(
            &[
                (hx - leg_w, hip - 0.01),
                (hx + leg_w, hip - 0.01),
                (kx + leg_w * 0.9, knee),
                (fx + leg_w * 0.8, feet),
                (fx - leg_w * 0.8, feet),
                (kx - leg_w * 0.9, knee),
            ],
            leg_low_c,
        );
        if cut < feet {
            let t = (cut - hip) / (feet - hip);
            let cx = hx + (fx - hx) * t;
            pt.poly(
                &[
                    (hx - leg_w * 1.1, hip - 0.01),
                    (hx + leg_w * 1.1, hip - 0.01),
                    (cx + leg_w * 1.1, cut),
                    (cx - leg_w * 1.1, cut),
                ],
                leg_top_c,
            );
        }
        let toe = if side { facing * 0.03 } else { 0.0 };
        pt.rect(
            fx - leg_w * 0.9 + toe.min(0.0),
            feet - 0.01,
            fx + leg_w * 0.9 + toe.max(0.0),
            feet + 0.035,
            shoe_c,
        );
    }
    if p.lower == LowerKind::Skirt {
        pt.poly(
            &[
                (-hw, hip - 0.03),
                (hw, hip - 0.03),
                (hw * 1.5, knee + 0.02),
                (-hw * 1.5, knee + 0.02),
            ],
            lower_c,
        );
    }

    // Torso: coats reach the thighs.
    let hem = match p.upper {
        UpperKind::Coat => hip + 0.16,
        UpperKind::Jacket => hip + 0.02,
        _ => hip,
    };
    let torso = [
        (-sw, shoulder),
        (sw, shoulder),
        (hw * 1.05, hem),
        (-hw * 1.05, hem),
    ];
    pt.poly(&torso, upper_c);
    let sleeve_c = upper_c;
    let arm_w = 0.032;
    let swing = pose.swing;
    let arms: Vec<(f32, f32)> = if side {
        vec![(0.0, facing * swing)]
    } else {
        vec![(-sw - arm_w * 0.6, -swing), (sw + arm_w * 0.6, swing)]
    };
    let hand_y = hip + 0.02;
    let mut hands = Vec::new();
    for &(x, dx) in &arms {
        let hand = (x + dx * 0.5, hand_y);
        let elbow = (x + dx * 0.2, (shoulder + hand_y) / 2.0);
        let sleeve_end = if p.upper.long_sleeves() {
            hand_y - 0.03
        } else {
            shoulder + 0.09
        };
        pt.line((x, shoulder + 0.01), elbow, arm_w * 2.0, skin);
        pt.line(elbow, hand, arm_w * 1.8, skin);
        // Sleeve over the arm as far as it reaches.
        let t = ((sleeve_end - shoulder) / (hand_y - shoulder)).clamp(0.0, 1.0);
        let end = if t <= 0.5 {
            let f = t / 0.5;
            (x + (elbow.0 - x) * f, shoulder + (elbow.1 - shoulder) * f)
        } else {
            elbow
        };
        pt.line((x, shoulder), end, arm_w * 2.3, sleeve_c);
        if t > 0.5 {
            let f = (t - 0.5) / 0.5;
            let e2 = (
                elbow.0 + (hand.0 - elbow.0) * f,
                elbow.1 + (hand.1 - elbow.1) * f,
            );
            pt.line(elbow, e2, arm_w * 2.1, sleeve_c);
        }
        hands.push(hand);
    }
    // Pattern.
    match p.pattern {
        Pattern::Stripes(c) => {
            let c = jitter(rng, c.rgb(), 10.0);
            let mut y = shoulder + 0.03;
            while y < hem - 0.02 {
                let t = (y - shoulder) / (hem - shoulder);
                let half = sw + (hw * 1.05 - sw) * t;
                pt.rect(-half, y, half, y + 0.018, c);
                y += 0.045;
            }
        }
        Pattern::Logo(c) if view == View::Front => {
            let c = jitter(rng, c.rgb(), 10.0);
            pt.rect(-0.035, shoulder + 0.06, 0.035, shoulder + 0.12, c);
        }
        _ => {}
    }
    if p.upper == UpperKind::Jacket && view == View::Front {
        pt.line(
            (0.0, shoulder + 0.02),
            (0.0, hem),
            0.008,
            darker(upper_c, 0.6),
        );
    }
    if p.upper == UpperKind::Shirt && view == View::Front {
        pt.poly(
            &[(-0.03, shoulder), (0.03, shoulder), (0.0, shoulder + 0.04)],
            darker(upper_c, 0.75),
        );
    }

    // Bags.
    if let Some(bag) = p.bag {
        let c = jitter(rng, bag.colour.rgb(), 10.0);
        let s = own(bag.side);
        match bag.kind {
            BagKind::Backpack => match view {
                View::Back => {
                    pt.rect(-sw * 0.75, shoulder + 0.02, sw * 0.75, hip - 0.06, c);
                    pt.rect(-sw * 0.6, hip - 0.15, sw * 0.6, hip - 0.13, darker(c, 0.6));
                }
                View::Front => {
                    pt.line(
                        (-sw * 0.6, shoulder),
                        (-sw * 0.55, shoulder + 0.18),
                        0.018,
                        c,
                    );
                    pt.line((sw * 0.6, shoulder), (sw * 0.55, shoulder + 0.18), 0.018, c);
                }
                View::Side(_) => {
                    pt.line(
                        (0.0, shoulder),
                        (facing * sw * 0.3, shoulder + 0.15),
                        0.015,
                        c,
                    );
                }
            },
            BagKind::ShoulderBag => {
                let bx = if side {
                    -facing * sw * 0.8
                } else {
                    s * (hw + 0.03)
                };
                if !side {
                    pt.line(
                        (-s * sw * 0.8, shoulder),
                        (bx, hip - 0.04),
                        0.012,
                        darker(c, 0.8),
                    );
                }
                pt.rect(bx - 0.05, hip - 0.07, bx + 0.05, hip + 0.04, c);
            }
            BagKind::Handbag => {
                let hand = if side {
                    hands.first().copied()
                } else {
                    hands.iter().copied().find(|h| h.0 * s > 0.0)
                };
                if let Some((hx, hy)) = hand {
                    pt.rect(hx - 0.04, hy, hx + 0.04, hy + 0.07, c);
                    pt.line((hx - 0.02, hy), (hx + 0.02, hy), 0.01, darker(c, 0.6));
                }
            }
        }
    }
    // Hands over bags.
    for &(hx, hy) in &hands {
        pt.ellipse(hx, hy, 0.02, 0.02, skin);
    }

    // Head, hair, face, hat.
    let hx = if side { facing * 0.01 } else { 0.0 };
    pt.rect(-0.022, neck - 0.01, 0.022, shoulder + 0.005, skin);
    pt.ellipse(hx, head_y, head_r * 0.85, head_r, skin);
    match (p.hair_length, view) {
        (HairLength::Bald, _) => {}
        (_, View::Back) => pt.ellipse(hx, head_y, head_r * 0.88, head_r * 1.02, hair_c),
        (_, View::Front) => {
            pt.ellipse(
                hx,
                head_y - head_r * 0.45,
                head_r * 0.9,
                head_r * 0.6,
                hair_c,
            );
        }
        (_, View::Side(_)) => {
            pt.ellipse(
                hx - facing * head_r * 0.3,
                head_y - head_r * 0.2,
                head_r * 0.7,
                head_r * 0.85,
                hair_c,
            );
        }
    }
    if p.hair_length == HairLength::Long {
        let back = if side { -facing * head_r * 0.9 } else { 0.0 };
        match p.hair_style {
            HairStyle::Ponytail if view != View::Front => {
                pt.line((back, head_y), (back * 1.4, head_y + 0.13), 0.03, hair_c);
            }
            HairStyle::Bun => {
                pt.ellipse(
                    back * 1.1,
                    head_y - head_r * 0.9,
                    head_r * 0.45,
                    head_r * 0.4,
                    hair_c,
                );
            }
            _ => {}
        }
    }
    if view == View::Front {
        let eye = rgb([30.0, 25.0, 25.0]);
        pt.rect(
            -head_r * 0.45,
            head_y - 0.005,
            -head_r * 0.2,
            head_y + 0.005,
            eye,
        );
        pt.rect(
            head_r * 0.2,
            head_y - 0.005,
            head_r * 0.45,
            head_y + 0.005,
            eye,
        );
    }
    if p.glasses && view != View::Back {
        let g = rgb([15.0, 15.0, 20.0]);
        if side {
            pt.rect(
                hx + facing * head_r * 0.4,
                head_y - 0.012,
                hx + facing * head_r * 0.9,
                head_y + 0.01,
                g,
            );
        } else {
            pt.rect(
                -head_r * 0.65,
                head_y - 0.013,
                -head_r * 0.1,
                head_y + 0.012,
                g,
            );
            pt.rect(
                head_r * 0.1,
                head_y - 0.013,
                head_r * 0.65,
                head_y + 0.012,
                g,
            );
            pt.rect(-head_r * 0.1, head_y - 0.006, head_r * 0.1, head_y, g);
        }
    }
    if let Some((kind, c)) = p.hat {
        let c = jitter(rng, c.rgb(), 10.0);
        pt.ellipse(hx, head_y - head_r * 0.55, head_r * 0.95, head_r * 0.55, c);
        match kind {
            HatKind::Cap => {
                let (a, b) = match view {
                    View::Front => (-head_r * 0.9, head_r * 0.9),
                    View::Back => (-head_r * 0.5, head_r * 0.5),
                    View::Side(_) => (hx, hx + facing * head_r * 1.5),
                };
                pt.rect(
                    a,
                    head_y - head_r * 0.25,
                    b,
                    head_y - head_r * 0.1,
                    darker(c, 0.8),
                );
            }
            HatKind::Beanie => {
                pt.rect(
                    -head_r * 0.95,
                    head_y - head_r * 0.3,
                    head_r * 0.95,
                    head_y - head_r * 0.12,
                    darker(c, 0.85),
                );
            }
        }
    }
    if p.phone {
        let (x, y) = if side {
            (hx + facing * head_r * 1.1, head_y + 0.02)
        } else {
            (0.0, hip - 0.1)
        };
        pt.rect(
            x - 0.015,
            y - 0.025,
            x + 0.015,
            y + 0.025,
            rgb([20.0, 20.0, 25.0]),
        );
    }
}

fn occluder<R: Rng>(img: &mut RgbImage, rng: &mut R) {
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

/// Renders one `height`x`width` crop of `p` seen from `view` by `camera`.
pub fn render<R: Rng>(
    p: &Person,
    view: View,
    camera: u8,
    (height, width): (u32, u32),
    rng: &mut R,
) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let look = camera_look(camera);
    background(&mut img, &look, rng);
    let hf = height as f32;
    let scale = if p.build == Build::Child {
        rng.random_range(0.6..0.72)
    } else {
        rng.random_range(0.82..0.94)
    };
    let ph = hf * scale;
    let bottom = hf - rng.random_range(0.01..0.05) * hf;
    let cx = width as f32 / 2.0 + rng.random_range(-0.1..0.1) * width as f32;
    let pose = Pose {
        stride: rng.random_range(0.0..0.07),
        swing: rng.random_range(-0.06..0.06),
    };
    {
        let mut painter = Painter {
            img: &mut img,
            cx,
            top: bottom - ph,
            h: ph,
        };
        person(&mut painter, p, view, &pose, rng);
    }
    if rng.random_bool(0.15) {
        occluder(&mut img, rng);
    }
    // Lighting, sensor noise, defocus.
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
