//! What a synthetic identity is: the attributes captions talk about.

use rand::seq::IndexedRandom;
use rand::Rng;

/// Named colours: what captions say and the RGB the renderer starts from (before lighting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Black,
    White,
    Grey,
    Red,
    Blue,
    Green,
    Yellow,
    Orange,
    Pink,
    Purple,
    Brown,
}

impl Colour {
    /// Every colour, in a fixed order.
    pub const ALL: [Colour; 11] = [
        Colour::Black,
        Colour::White,
        Colour::Grey,
        Colour::Red,
        Colour::Blue,
        Colour::Green,
        Colour::Yellow,
        Colour::Orange,
        Colour::Pink,
        Colour::Purple,
        Colour::Brown,
    ];

    /// The word a caption uses (with a synonym now and then).
    pub fn word<R: Rng>(self, rng: &mut R) -> &'static str {
        let options: &[&str] = match self {
            Colour::Black => &["black", "black", "dark"],
            Colour::White => &["white"],
            Colour::Grey => &["grey", "gray", "grey"],
            Colour::Red => &["red"],
            Colour::Blue => &["blue"],
            Colour::Green => &["green"],
            Colour::Yellow => &["yellow"],
            Colour::Orange => &["orange"],
            Colour::Pink => &["pink"],
            Colour::Purple => &["purple", "violet", "purple"],
            Colour::Brown => &["brown"],
        };
        options.choose(rng).copied().unwrap_or("dark")
    }

    /// The plain name (metadata, tests).
    pub fn name(self) -> &'static str {
        match self {
            Colour::Black => "black",
            Colour::White => "white",
            Colour::Grey => "grey",
            Colour::Red => "red",
            Colour::Blue => "blue",
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Orange => "orange",
            Colour::Pink => "pink",
            Colour::Purple => "purple",
            Colour::Brown => "brown",
        }
    }

    /// Base RGB.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Black => [25, 25, 28],
            Colour::White => [235, 235, 230],
            Colour::Grey => [128, 128, 128],
            Colour::Red => [200, 30, 35],
            Colour::Blue => [35, 70, 190],
            Colour::Green => [40, 150, 60],
            Colour::Yellow => [235, 210, 40],
            Colour::Orange => [240, 130, 25],
            Colour::Pink => [240, 140, 180],
            Colour::Purple => [120, 50, 150],
            Colour::Brown => [115, 75, 40],
        }
    }
}

/// Colours garments are drawn in: dark and neutral ones are common, as in street footage.
fn garment_colour<R: Rng>(rng: &mut R) -> Colour {
    const WEIGHTED: [(Colour, u32); 11] = [
        (Colour::Black, 16),
        (Colour::White, 12),
        (Colour::Grey, 10),
        (Colour::Blue, 12),
        (Colour::Red, 9),
        (Colour::Green, 8),
        (Colour::Brown, 7),
        (Colour::Yellow, 6),
        (Colour::Pink, 7),
        (Colour::Purple, 6),
        (Colour::Orange, 7),
    ];
    WEIGHTED
        .choose_weighted(rng, |c| c.1)
        .map(|c| c.0)
        .unwrap_or(Colour::Black)
}

fn other_colour<R: Rng>(rng: &mut R, not: Colour) -> Colour {
    loop {
        let c = garment_colour(rng);
        if c != not {
            return c;
        }
    }
}

/// Who the person is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Build {
    Man,
    Woman,
    Child,
}

/// Hair length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HairLength {
    Bald,
    Short,
    Long,
}

/// How long hair is worn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HairStyle {
    Loose,
    Ponytail,
    Bun,
}

/// Upper garment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpperKind {
    TShirt,
    Shirt,
    Sweater,
    Jacket,
    Coat,
}

impl UpperKind {
    /// Long sleeves cover the arms.
    pub fn long_sleeves(self) -> bool {
        !matches!(self, UpperKind::TShirt)
    }
}

/// Pattern on the upper garment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "colour")]
pub enum Pattern {
    Plain,
    Stripes(Colour),
    /// A logo on the chest: seen from the front only.
    Logo(Colour),
}

/// Lower garment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LowerKind {
    Trousers,
    Jeans,
    Shorts,
    Skirt,
}

/// Bag kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BagKind {
    Backpack,
    ShoulderBag,
    Handbag,
}

/// Which side of the body (the person's own left/right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

/// Headwear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HatKind {
    Cap,
    Beanie,
}

/// A bag and how it is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Bag {
    pub kind: BagKind,
    pub colour: Colour,
    pub side: Side,
}

/// One synthetic identity: everything a caption may mention, plus skin tone (never mentioned).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Person {
    pub build: Build,
    /// Pronoun choice (children are boys or girls).
    pub female: bool,
    pub skin: u8,
    pub hair_length: HairLength,
    pub hair_style: HairStyle,
    pub hair_colour: Colour,
    pub upper: UpperKind,
    pub upper_colour: Colour,
    pub pattern: Pattern,
    pub lower: LowerKind,
    pub lower_colour: Colour,
    pub shoes: Colour,
    pub bag: Option<Bag>,
    pub hat: Option<(HatKind, Colour)>,
    pub glasses: bool,
    pub umbrella: Option<Colour>,
    pub phone: bool,
}

/// Skin tones (RGB).
pub const SKIN: [[u8; 3]; 5] = [
    [245, 215, 190],
    [225, 185, 150],
    [195, 150, 110],
    [150, 105, 75],
    [100, 70, 50],
];

/// One of `options`, uniformly (repeats weight an option).
fn one_of<R: Rng, T: Copy>(rng: &mut R, options: &[T]) -> T {
    // `options` is never empty; the fallback only spares an unwrap.
    *options.choose(rng).unwrap_or(&options[0])
}

impl Person {
    /// Draws a random identity.
    pub fn random<R: Rng>(rng: &mut R) -> Person {
        use Build::{Child, Man, Woman};
        let build = one_of(rng, &[Man, Man, Woman, Woman, Child]);
        let female = match build {
            Man => false,
            Woman => true,
            Child => rng.random_bool(0.5),
        };
        let (hair_length, hair_style) = random_hair(female, rng);
        let hair_colour = one_of(
            rng,
            &[
                Colour::Black,
                Colour::Black,
                Colour::Brown,
                Colour::Brown,
                Colour::Yellow,
                Colour::Grey,
                Colour::Red,
            ],
        );
        let (upper, upper_colour, pattern) = random_upper(rng);
        let (lower, lower_colour) = random_lower(female, rng);
        let shoes = one_of(
            rng,
            &[
                Colour::Black,
                Colour::Black,
                Colour::White,
                Colour::White,
                Colour::Brown,
                Colour::Grey,
                Colour::Red,
                Colour::Blue,
            ],
        );
        let bag = random_bag(rng);
        let hat = random_hat(rng);
        Person {
            build,
            female,
            skin: rng.random_range(0..SKIN.len() as u8),
            hair_length,
            hair_style,
            hair_colour,
            upper,
            upper_colour,
            pattern,
            lower,
            lower_colour,
            shoes,
            bag,
            hat,
            glasses: rng.random_bool(0.25),
            umbrella: rng.random_bool(0.1).then(|| garment_colour(rng)),
            phone: rng.random_bool(0.15),
        }
    }
}

/// Hair length by sex (long for most women, bald or long for a few men), and how long hair is
/// worn.
fn random_hair<R: Rng>(female: bool, rng: &mut R) -> (HairLength, HairStyle) {
    let length = match (female, rng.random_range(0..10)) {
        (true, 0..=6) => HairLength::Long,
        (true, _) => HairLength::Short,
        (false, 0) => HairLength::Bald,
        (false, 1) => HairLength::Long,
        (false, _) => HairLength::Short,
    };
    let style = if length == HairLength::Long {
        use HairStyle::{Bun, Loose, Ponytail};
        one_of(rng, &[Loose, Loose, Ponytail, Bun])
    } else {
        HairStyle::Loose
    };
    (length, style)
}

/// The upper garment, its colour and its pattern (in another colour).
fn random_upper<R: Rng>(rng: &mut R) -> (UpperKind, Colour, Pattern) {
    use UpperKind::{Coat, Jacket, Shirt, Sweater, TShirt};
    let upper = one_of(rng, &[TShirt, TShirt, Shirt, Sweater, Jacket, Coat]);
    let colour = garment_colour(rng);
    let pattern = match rng.random_range(0..10) {
        0..=5 => Pattern::Plain,
        6 | 7 => Pattern::Stripes(other_colour(rng, colour)),
        _ => Pattern::Logo(other_colour(rng, colour)),
    };
    (upper, colour, pattern)
}

/// The lower garment (skirts for women and girls only) and its colour (jeans mostly blue).
fn random_lower<R: Rng>(female: bool, rng: &mut R) -> (LowerKind, Colour) {
    use LowerKind::{Jeans, Shorts, Skirt, Trousers};
    let lower = if female {
        one_of(rng, &[Trousers, Jeans, Shorts, Skirt, Skirt])
    } else {
        one_of(rng, &[Trousers, Trousers, Jeans, Shorts])
    };
    let colour = if lower == Jeans && rng.random_bool(0.6) {
        Colour::Blue
    } else {
        garment_colour(rng)
    };
    (lower, colour)
}

/// No bag for 30% of people; otherwise a backpack, shoulder bag or handbag on one side.
fn random_bag<R: Rng>(rng: &mut R) -> Option<Bag> {
    match rng.random_range(0..10) {
        0..=2 => None,
        n => Some(Bag {
            kind: match n {
                3..=5 => BagKind::Backpack,
                6 | 7 => BagKind::ShoulderBag,
                _ => BagKind::Handbag,
            },
            colour: garment_colour(rng),
            side: if rng.random_bool(0.5) {
                Side::Left
            } else {
                Side::Right
            },
        }),
    }
}

/// A cap or beanie on a quarter of people.
fn random_hat<R: Rng>(rng: &mut R) -> Option<(HatKind, Colour)> {
    rng.random_bool(0.25).then(|| {
        let kind = if rng.random_bool(0.5) {
            HatKind::Cap
        } else {
            HatKind::Beanie
        };
        (kind, garment_colour(rng))
    })
}
