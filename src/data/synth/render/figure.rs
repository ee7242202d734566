//! The person: proportions and colours for one image ([`Figure`]), painted back to front by the
//! painters in `clothes`, `accessories` and `head`.

use image::Rgb;
use rand::Rng;

use super::paint::{jitter, Painter};
use super::{accessories, clothes, head, View};
use crate::data::synth::person::{Build, Colour, Person, Side, UpperKind, SKIN};

/// Walking pose of one image.
pub(super) struct Pose {
    pub(super) stride: f32,
    pub(super) swing: f32,
}

/// One person as drawn in one image: who, from where, body landmarks (in person heights, see
/// [`Painter`]) and this image's shades of their colours.
pub(super) struct Figure<'a> {
    pub(super) p: &'a Person,
    pub(super) view: View,
    pub(super) pose: &'a Pose,
    /// In profile.
    pub(super) side: bool,
    /// Facing direction in side view: +1 = image right, 0 otherwise.
    pub(super) facing: f32,
    pub(super) head_r: f32,
    pub(super) head_y: f32,
    pub(super) neck: f32,
    pub(super) shoulder: f32,
    pub(super) hip: f32,
    /// Half widths at the shoulders and hips.
    pub(super) sw: f32,
    pub(super) hw: f32,
    pub(super) leg_w: f32,
    pub(super) knee: f32,
    pub(super) feet: f32,
    /// Bottom of the upper garment: coats reach the thighs.
    pub(super) hem: f32,
    pub(super) skin: Rgb<u8>,
    pub(super) hair: Rgb<u8>,
    pub(super) upper: Rgb<u8>,
    pub(super) lower: Rgb<u8>,
    pub(super) shoes: Rgb<u8>,
}

fn hair_colour(p: &Person) -> [u8; 3] {
    match p.hair_colour {
        Colour::Yellow => [220, 190, 110],
        Colour::Red => [160, 70, 30],
        Colour::Grey => [170, 170, 170],
        c => c.rgb(),
    }
}

impl<'a> Figure<'a> {
    /// Lays out `p` seen from `view` in `pose`, drawing this image's shades from `rng`.
    pub(super) fn new<R: Rng>(p: &'a Person, view: View, pose: &'a Pose, rng: &mut R) -> Self {
        let child = p.build == Build::Child;
        let skin = jitter(rng, SKIN[p.skin as usize % SKIN.len()], 6.0);
        let hair = jitter(rng, hair_colour(p), 10.0);
        let upper = jitter(rng, p.upper_colour.rgb(), 12.0);
        let lower = jitter(rng, p.lower_colour.rgb(), 12.0);
        let shoes = jitter(rng, p.shoes.rgb(), 10.0);
        let side = matches!(view, View::Side(_));
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
        let (sw, hw) = match p.build {
            Build::Man => (0.13, 0.1),
            Build::Woman => (0.11, 0.11),
            Build::Child => (0.12, 0.1),
        };
        let hem = match p.upper {
            UpperKind::Coat => hip + 0.16,
            UpperKind::Jacket => hip + 0.02,
            _ => hip,
        };
        Figure {
            p,
            view,
            pose,
            side,
            facing,
            head_r,
            head_y,
            neck,
            shoulder,
            hip,
            sw: sw * widen,
            hw: hw * widen,
            leg_w: 0.045,
            knee: hip + (0.95 - hip) * 0.45,
            feet: 0.96,
            hem,
            skin,
            hair,
            upper,
            lower,
            shoes,
        }
    }

    /// Which image side the person's own `s` is on (±1): mirrored when facing the camera.
    pub(super) fn own(&self, s: Side) -> f32 {
        let left = match self.view {
            View::Front => 1.0,
            View::Back => -1.0,
            View::Side(_) => -self.facing,
        };
        if s == Side::Left {
            left
        } else {
            -left
        }
    }

    /// Where the head is across: a little ahead of the body axis in profile.
    pub(super) fn head_x(&self) -> f32 {
        if self.side {
            self.facing * 0.01
        } else {
            0.0
        }
    }

    /// `1` from the front and back, the facing direction in profile.
    pub(super) fn ahead(&self) -> f32 {
        if self.side {
            self.facing
        } else {
            1.0
        }
    }
}

/// Paints `p` back to front: what is behind the body, legs, torso and arms, bags, then the head.
pub(super) fn person<R: Rng>(pt: &mut Painter, p: &Person, view: View, pose: &Pose, rng: &mut R) {
    let f = Figure::new(p, view, pose, rng);
    accessories::umbrella(pt, &f, rng);
    head::hair_behind(pt, &f);
    accessories::backpack_behind(pt, &f, rng);
    clothes::legs(pt, &f);
    clothes::skirt(pt, &f);
    clothes::torso(pt, &f);
    let hands = clothes::arms(pt, &f);
    clothes::pattern(pt, &f, rng);
    clothes::front_details(pt, &f);
    accessories::bag(pt, &f, &hands, rng);
    // Hands over bags.
    for &(hx, hy) in &hands {
        pt.ellipse(hx, hy, 0.02, 0.02, f.skin);
    }
    head::head(pt, &f);
    accessories::glasses(pt, &f);
    accessories::hat(pt, &f, rng);
    accessories::phone(pt, &f);
}
