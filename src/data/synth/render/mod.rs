//! Draws a synthetic person crop: a street background for the camera, the person in a
//! viewpoint and pose, occluders, then lighting, blur and sensor noise. Each part has its own
//! painter: the scene (`scene`), the body and clothes (`figure`, `clothes`), the head (`head`)
//! and what the person carries (`accessories`), all drawing through one [`paint::Painter`].

mod accessories;
mod clothes;
mod figure;
mod head;
mod paint;
mod scene;

use image::RgbImage;
use rand::Rng;

use super::person::{Build, Person};
use figure::{person, Pose};
use paint::Painter;
use scene::{background, camera_look, expose, occluder};

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
    expose(img, &look, rng)
}
