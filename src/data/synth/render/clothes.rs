//! Painters for the body and what is worn on it: legs and shoes, skirt, torso, arms and
//! sleeves, the garment's pattern and front details.

use rand::Rng;

use super::figure::Figure;
use super::paint::{darker, jitter, Painter};
use super::View;
use crate::data::synth::person::{LowerKind, Pattern, UpperKind};

/// Both legs (trousers, or skin under shorts and skirts), then shoes.
pub(super) fn legs(pt: &mut Painter, f: &Figure) {
    let spread = if f.side { 0.0 } else { f.hw * 0.5 };
    for (i, dir) in [-1.0f32, 1.0].into_iter().enumerate() {
        let hx = dir * spread;
        let fx = hx + f.ahead() * f.pose.stride * if i == 0 { 1.0 } else { -1.0 };
        leg(pt, f, hx, fx);
    }
}

/// One leg from the hip at `hx` to the foot at `fx`.
fn leg(pt: &mut Painter, f: &Figure, hx: f32, fx: f32) {
    let (hip, knee, feet, leg_w) = (f.hip, f.knee, f.feet, f.leg_w);
    let leg_low_c = match f.p.lower {
        LowerKind::Trousers | LowerKind::Jeans => f.lower,
        LowerKind::Shorts | LowerKind::Skirt => f.skin,
    };
    let kx = (hx + fx) / 2.0;
    let cut = match f.p.lower {
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
            f.lower,
        );
    }
    let toe = if f.side { f.facing * 0.03 } else { 0.0 };
    pt.rect(
        fx - leg_w * 0.9 + toe.min(0.0),
        feet - 0.01,
        fx + leg_w * 0.9 + toe.max(0.0),
        feet + 0.035,
        f.shoes,
    );
}

/// A skirt over the legs, flaring to the knees.
pub(super) fn skirt(pt: &mut Painter, f: &Figure) {
    if f.p.lower != LowerKind::Skirt {
        return;
    }
    let (hw, hip, knee) = (f.hw, f.hip, f.knee);
    pt.poly(
        &[
            (-hw, hip - 0.03),
            (hw, hip - 0.03),
            (hw * 1.5, knee + 0.02),
            (-hw * 1.5, knee + 0.02),
        ],
        f.lower,
    );
}

/// The upper garment from the shoulders to its hem.
pub(super) fn torso(pt: &mut Painter, f: &Figure) {
    let torso = [
        (-f.sw, f.shoulder),
        (f.sw, f.shoulder),
        (f.hw * 1.05, f.hem),
        (-f.hw * 1.05, f.hem),
    ];
    pt.poly(&torso, f.upper);
}

const ARM_W: f32 = 0.032;

/// Both arms (one in profile), swinging with the pose; returns where the hands are.
pub(super) fn arms(pt: &mut Painter, f: &Figure) -> Vec<(f32, f32)> {
    let (sw, swing) = (f.sw, f.pose.swing);
    let arms: Vec<(f32, f32)> = if f.side {
        vec![(0.0, f.facing * swing)]
    } else {
        vec![(-sw - ARM_W * 0.6, -swing), (sw + ARM_W * 0.6, swing)]
    };
    arms.iter().map(|&(x, dx)| arm(pt, f, x, dx)).collect()
}

/// One arm hanging from the shoulder at `x`, the hand `dx / 2` to the side; the sleeve covers
/// it as far as it reaches. Returns the hand.
fn arm(pt: &mut Painter, f: &Figure, x: f32, dx: f32) -> (f32, f32) {
    let shoulder = f.shoulder;
    let hand_y = f.hip + 0.02;
    let hand = (x + dx * 0.5, hand_y);
    let elbow = (x + dx * 0.2, (shoulder + hand_y) / 2.0);
    let sleeve_end = if f.p.upper.long_sleeves() {
        hand_y - 0.03
    } else {
        shoulder + 0.09
    };
    pt.line((x, shoulder + 0.01), elbow, ARM_W * 2.0, f.skin);
    pt.line(elbow, hand, ARM_W * 1.8, f.skin);
    let t = ((sleeve_end - shoulder) / (hand_y - shoulder)).clamp(0.0, 1.0);
    let end = if t <= 0.5 {
        let k = t / 0.5;
        (x + (elbow.0 - x) * k, shoulder + (elbow.1 - shoulder) * k)
    } else {
        elbow
    };
    pt.line((x, shoulder), end, ARM_W * 2.3, f.upper);
    if t > 0.5 {
        let k = (t - 0.5) / 0.5;
        let e2 = (
            elbow.0 + (hand.0 - elbow.0) * k,
            elbow.1 + (hand.1 - elbow.1) * k,
        );
        pt.line(elbow, e2, ARM_W * 2.1, f.upper);
    }
    hand
}

/// Stripes across the upper garment, or a logo on the chest (seen from the front only).
pub(super) fn pattern<R: Rng>(pt: &mut Painter, f: &Figure, rng: &mut R) {
    let (sw, hw, shoulder, hem) = (f.sw, f.hw, f.shoulder, f.hem);
    match f.p.pattern {
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
        Pattern::Logo(c) if f.view == View::Front => {
            let c = jitter(rng, c.rgb(), 10.0);
            pt.rect(-0.035, shoulder + 0.06, 0.035, shoulder + 0.12, c);
        }
        _ => {}
    }
}

/// From the front: a jacket's zip, a shirt's collar.
pub(super) fn front_details(pt: &mut Painter, f: &Figure) {
    if f.view != View::Front {
        return;
    }
    let shoulder = f.shoulder;
    if f.p.upper == UpperKind::Jacket {
        pt.line(
            (0.0, shoulder + 0.02),
            (0.0, f.hem),
            0.008,
            darker(f.upper, 0.6),
        );
    }
    if f.p.upper == UpperKind::Shirt {
        pt.poly(
            &[(-0.03, shoulder), (0.03, shoulder), (0.0, shoulder + 0.04)],
            darker(f.upper, 0.75),
        );
    }
}
