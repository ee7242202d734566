//! Painters for the head: long hair behind the shoulders, neck and face, hair and how it is
//! worn, eyes.

use super::figure::Figure;
use super::paint::{rgb, Painter};
use super::View;
use crate::data::synth::person::{HairLength, HairStyle};

/// Long loose hair falls behind the shoulders (painted before the body).
pub(super) fn hair_behind(pt: &mut Painter, f: &Figure) {
    if f.p.hair_length != HairLength::Long || f.p.hair_style != HairStyle::Loose {
        return;
    }
    let (head_r, head_y) = (f.head_r, f.head_y);
    let back = if f.side {
        -f.facing * head_r * 0.6
    } else {
        0.0
    };
    pt.rect(
        back - head_r * 1.1,
        head_y - head_r * 0.3,
        back + head_r * 1.1,
        f.shoulder + 0.1,
        f.hair,
    );
}

/// Neck, face, hair, a ponytail or bun, and eyes from the front.
pub(super) fn head(pt: &mut Painter, f: &Figure) {
    let (hx, head_r, head_y) = (f.head_x(), f.head_r, f.head_y);
    pt.rect(-0.022, f.neck - 0.01, 0.022, f.shoulder + 0.005, f.skin);
    pt.ellipse(hx, head_y, head_r * 0.85, head_r, f.skin);
    hair(pt, f);
    tied_hair(pt, f);
    if f.view == View::Front {
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
}

/// Hair on the head: all of it from behind, a fringe from the front, the back half in profile.
fn hair(pt: &mut Painter, f: &Figure) {
    let (hx, head_r, head_y) = (f.head_x(), f.head_r, f.head_y);
    match (f.p.hair_length, f.view) {
        (HairLength::Bald, _) => {}
        (_, View::Back) => pt.ellipse(hx, head_y, head_r * 0.88, head_r * 1.02, f.hair),
        (_, View::Front) => {
            pt.ellipse(
                hx,
                head_y - head_r * 0.45,
                head_r * 0.9,
                head_r * 0.6,
                f.hair,
            );
        }
        (_, View::Side(_)) => {
            pt.ellipse(
                hx - f.facing * head_r * 0.3,
                head_y - head_r * 0.2,
                head_r * 0.7,
                head_r * 0.85,
                f.hair,
            );
        }
    }
}

/// Long hair in a ponytail (not seen from the front) or a bun.
fn tied_hair(pt: &mut Painter, f: &Figure) {
    if f.p.hair_length != HairLength::Long {
        return;
    }
    let (head_r, head_y) = (f.head_r, f.head_y);
    let back = if f.side {
        -f.facing * head_r * 0.9
    } else {
        0.0
    };
    match f.p.hair_style {
        HairStyle::Ponytail if f.view != View::Front => {
            pt.line((back, head_y), (back * 1.4, head_y + 0.13), 0.03, f.hair);
        }
        HairStyle::Bun => {
            pt.ellipse(
                back * 1.1,
                head_y - head_r * 0.9,
                head_r * 0.45,
                head_r * 0.4,
                f.hair,
            );
        }
        _ => {}
    }
}
