//! Painters for what the person carries or puts on: umbrella, bags, glasses, hat, phone.

use image::Rgb;
use rand::Rng;

use super::figure::Figure;
use super::paint::{darker, jitter, rgb, Painter};
use super::View;
use crate::data::synth::person::{Bag, BagKind, HatKind};

/// An open umbrella above the head, behind everything else.
pub(super) fn umbrella<R: Rng>(pt: &mut Painter, f: &Figure, rng: &mut R) {
    let Some(c) = f.p.umbrella else {
        return;
    };
    let c = jitter(rng, c.rgb(), 10.0);
    let hx = 0.12 * f.ahead();
    let mut dome = Vec::new();
    for i in 0..=12 {
        let a = std::f32::consts::PI * i as f32 / 12.0;
        dome.push((hx * 0.4 + 0.22 * a.cos(), 0.02 - 0.09 * a.sin()));
    }
    pt.poly(&dome, c);
    pt.line(
        (hx * 0.4, 0.02),
        (hx, f.hip - 0.05),
        0.012,
        rgb([40.0, 40.0, 40.0]),
    );
}

/// A backpack seen from the side sticks out behind the back.
pub(super) fn backpack_behind<R: Rng>(pt: &mut Painter, f: &Figure, rng: &mut R) {
    let Some(bag) = f.p.bag.filter(|b| b.kind == BagKind::Backpack && f.side) else {
        return;
    };
    let c = jitter(rng, bag.colour.rgb(), 10.0);
    let b = -f.facing;
    pt.rect(
        b * f.sw * 0.8,
        f.shoulder + 0.02,
        b * (f.sw + 0.09),
        f.hip - 0.08,
        c,
    );
}

/// The bag on the body: a backpack's straps or pack, a shoulder bag at the hip, or a handbag
/// in the hand on its side (`hands` as [`super::clothes::arms`] returned them).
pub(super) fn bag<R: Rng>(pt: &mut Painter, f: &Figure, hands: &[(f32, f32)], rng: &mut R) {
    let Some(bag) = f.p.bag else {
        return;
    };
    let c = jitter(rng, bag.colour.rgb(), 10.0);
    match bag.kind {
        BagKind::Backpack => backpack(pt, f, c),
        BagKind::ShoulderBag => shoulder_bag(pt, f, bag, c),
        BagKind::Handbag => {
            let s = f.own(bag.side);
            let hand = if f.side {
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

/// The pack from behind, the straps from the front, one strap in profile.
fn backpack(pt: &mut Painter, f: &Figure, c: Rgb<u8>) {
    let (sw, shoulder, hip) = (f.sw, f.shoulder, f.hip);
    match f.view {
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
                (f.facing * sw * 0.3, shoulder + 0.15),
                0.015,
                c,
            );
        }
    }
}

/// A bag at the hip on its side, its strap across the chest (behind the hip in profile).
fn shoulder_bag(pt: &mut Painter, f: &Figure, bag: Bag, c: Rgb<u8>) {
    let (sw, hw, shoulder, hip) = (f.sw, f.hw, f.shoulder, f.hip);
    let s = f.own(bag.side);
    let bx = if f.side {
        -f.facing * sw * 0.8
    } else {
        s * (hw + 0.03)
    };
    if !f.side {
        pt.line(
            (-s * sw * 0.8, shoulder),
            (bx, hip - 0.04),
            0.012,
            darker(c, 0.8),
        );
    }
    pt.rect(bx - 0.05, hip - 0.07, bx + 0.05, hip + 0.04, c);
}

/// Glasses: two lenses and a bridge from the front, one lens in profile, none from behind.
pub(super) fn glasses(pt: &mut Painter, f: &Figure) {
    if !f.p.glasses || f.view == View::Back {
        return;
    }
    let (head_r, head_y) = (f.head_r, f.head_y);
    let g = rgb([15.0, 15.0, 20.0]);
    if f.side {
        let hx = f.head_x();
        pt.rect(
            hx + f.facing * head_r * 0.4,
            head_y - 0.012,
            hx + f.facing * head_r * 0.9,
            head_y + 0.01,
            g,
        );
        return;
    }
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

/// A cap with its peak, or a beanie with its band.
pub(super) fn hat<R: Rng>(pt: &mut Painter, f: &Figure, rng: &mut R) {
    let Some((kind, c)) = f.p.hat else {
        return;
    };
    let (hx, head_r, head_y) = (f.head_x(), f.head_r, f.head_y);
    let c = jitter(rng, c.rgb(), 10.0);
    pt.ellipse(hx, head_y - head_r * 0.55, head_r * 0.95, head_r * 0.55, c);
    match kind {
        HatKind::Cap => {
            let (a, b) = match f.view {
                View::Front => (-head_r * 0.9, head_r * 0.9),
                View::Back => (-head_r * 0.5, head_r * 0.5),
                View::Side(_) => (hx, hx + f.facing * head_r * 1.5),
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

/// A phone at the ear in profile, in front of the chest otherwise.
pub(super) fn phone(pt: &mut Painter, f: &Figure) {
    if !f.p.phone {
        return;
    }
    let (x, y) = if f.side {
        (f.head_x() + f.facing * f.head_r * 1.1, f.head_y + 0.02)
    } else {
        (0.0, f.hip - 0.1)
    };
    pt.rect(
        x - 0.015,
        y - 0.025,
        x + 0.015,
        y + 0.025,
        rgb([20.0, 20.0, 25.0]),
    );
}
