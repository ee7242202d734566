//! Captions written the way annotators write them: varied templates, synonyms, word order and
//! omissions, 1–4 sentences. Colours always stay bound to their garment.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

use super::person::{
    BagKind, Build, Colour, HairLength, HairStyle, HatKind, LowerKind, Pattern, Person, Side,
    UpperKind,
};
use super::render::View;

fn pick<'a, R: Rng>(rng: &mut R, options: &[&'a str]) -> &'a str {
    options.choose(rng).copied().unwrap_or_default()
}

fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// "a red coat", "an orange coat".
fn with_article(phrase: String) -> String {
    format!("{} {phrase}", article(&phrase))
}

struct Pronouns {
    subject: &'static str,
    possessive: &'static str,
}

fn pronouns(p: &Person) -> Pronouns {
    if p.female {
        Pronouns {
            subject: "she",
            possessive: "her",
        }
    } else {
        Pronouns {
            subject: "he",
            possessive: "his",
        }
    }
}

fn subject<R: Rng>(p: &Person, rng: &mut R) -> String {
    let noun = match (p.build, p.female) {
        (Build::Man, _) => pick(
            rng,
            &["man", "man", "young man", "guy", "male", "gentleman"],
        ),
        (Build::Woman, _) => pick(rng, &["woman", "woman", "young woman", "lady", "female"]),
        (Build::Child, true) => pick(rng, &["girl", "little girl", "young girl", "child"]),
        (Build::Child, false) => pick(rng, &["boy", "little boy", "young boy", "child"]),
    };
    let det = pick(rng, &["a", "a", "the", "this"]);
    let det = if det == "a" { article(noun) } else { det };
    format!("{det} {noun}")
}

fn hair<R: Rng>(p: &Person, rng: &mut R) -> Option<String> {
    let colour = match p.hair_colour {
        Colour::Yellow => pick(rng, &["blonde", "blond", "yellow"]),
        Colour::Red => pick(rng, &["red", "ginger"]),
        c => c.word(rng),
    };
    Some(match p.hair_length {
        HairLength::Bald => return None,
        HairLength::Short => format!(
            "{} {colour} hair",
            pick(rng, &["short", "short", "cropped"])
        ),
        HairLength::Long => match p.hair_style {
            HairStyle::Loose => format!("long {colour} hair"),
            HairStyle::Ponytail => {
                pick(rng, &["long {c} hair in a ponytail", "a {c} ponytail"]).replace("{c}", colour)
            }
            HairStyle::Bun => pick(rng, &["{c} hair tied in a bun", "long {c} hair in a bun"])
                .replace("{c}", colour),
        },
    })
}

fn upper<R: Rng>(p: &Person, rng: &mut R, view: View) -> String {
    let noun = match p.upper {
        UpperKind::TShirt => pick(
            rng,
            &["t-shirt", "t-shirt", "tee", "short sleeved shirt", "top"],
        ),
        UpperKind::Shirt => pick(rng, &["shirt", "long sleeved shirt", "button up shirt"]),
        UpperKind::Sweater => pick(rng, &["sweater", "jumper", "pullover", "sweatshirt"]),
        UpperKind::Jacket => pick(rng, &["jacket", "jacket", "zip up jacket"]),
        UpperKind::Coat => pick(rng, &["coat", "long coat", "overcoat"]),
    };
    let colour = p.upper_colour.word(rng);
    match p.pattern {
        Pattern::Plain => with_article(format!("{colour} {noun}")),
        Pattern::Stripes(c) => {
            let stripe = c.word(rng);
            if rng.random_bool(0.5) {
                with_article(format!("{colour} and {stripe} striped {noun}"))
            } else {
                format!("{} {colour} {noun} with {stripe} stripes", article(colour))
            }
        }
        // A logo shows on the front; from behind, annotators see a plain garment.
        Pattern::Logo(c) if view == View::Front => {
            let logo = c.word(rng);
            let what = pick(rng, &["logo", "logo", "print", "graphic"]);
            format!(
                "{} {colour} {noun} with {} {logo} {what} on the front",
                article(colour),
                article(logo)
            )
        }
        Pattern::Logo(_) => with_article(format!("{colour} {noun}")),
    }
}

fn lower<R: Rng>(p: &Person, rng: &mut R) -> String {
    let colour = p.lower_colour.word(rng);
    match p.lower {
        LowerKind::Trousers => format!(
            "{colour} {}",
            pick(rng, &["trousers", "pants", "pants", "slacks"])
        ),
        LowerKind::Jeans => format!("{colour} {}", pick(rng, &["jeans", "jeans", "denim pants"])),
        LowerKind::Shorts => format!("{colour} shorts"),
        LowerKind::Skirt => with_article(format!(
            "{colour} {}",
            pick(rng, &["skirt", "skirt", "knee length skirt"])
        )),
    }
}

fn shoes<R: Rng>(p: &Person, rng: &mut R) -> String {
    let colour = p.shoes.word(rng);
    pick(
        rng,
        &[
            "{c} shoes",
            "{c} sneakers",
            "a pair of {c} shoes",
            "{c} trainers",
            "{c} footwear",
        ],
    )
    .replace("{c}", colour)
}

fn bag<R: Rng>(p: &Person, rng: &mut R, pro: &Pronouns) -> Option<String> {
    let bag = p.bag?;
    let colour = bag.colour.word(rng);
    let side = match bag.side {
        Side::Left => "left",
        Side::Right => "right",
    };
    let text = match bag.kind {
        BagKind::Backpack => pick(
            rng,
            &[
                "a {c} backpack",
                "a {c} backpack",
                "a {c} rucksack",
                "a {c} bag on {p} back",
            ],
        ),
        BagKind::ShoulderBag => pick(
            rng,
            &[
                "a {c} shoulder bag",
                "a {c} bag over {p} {s} shoulder",
                "a {c} messenger bag",
            ],
        ),
        BagKind::Handbag => pick(
            rng,
            &[
                "a {c} handbag",
                "a {c} handbag in {p} {s} hand",
                "a small {c} purse",
            ],
        ),
    };
    Some(
        text.replace("{c}", colour)
            .replace("{p}", pro.possessive)
            .replace("{s}", side),
    )
}

fn hat<R: Rng>(p: &Person, rng: &mut R) -> Option<String> {
    let (kind, colour) = p.hat?;
    let colour = colour.word(rng);
    Some(match kind {
        HatKind::Cap => pick(rng, &["a {c} cap", "a {c} baseball cap"]).replace("{c}", colour),
        HatKind::Beanie => pick(rng, &["a {c} beanie", "a {c} knit hat", "a {c} woolly hat"])
            .replace("{c}", colour),
    })
}

/// Clauses that follow "<subject> is" or "<pronoun> is".
fn extras<R: Rng>(p: &Person, rng: &mut R, view: View) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = p.umbrella {
        let colour = c.word(rng);
        out.push(
            pick(
                rng,
                &["holding a {c} umbrella", "carrying an open {c} umbrella"],
            )
            .replace("{c}", colour),
        );
    }
    if p.phone && rng.random_bool(0.8) {
        out.push(
            pick(
                rng,
                &[
                    "looking at a phone",
                    "holding a cell phone",
                    "using a mobile phone",
                ],
            )
            .to_string(),
        );
    }
    if rng.random_bool(0.2) {
        out.push(match view {
            View::Front => pick(rng, &["walking toward the camera", "facing the camera"]).into(),
            View::Back => pick(rng, &["walking away from the camera", "facing away"]).into(),
            View::Side(_) => pick(rng, &["walking to the side", "seen from the side"]).into(),
        });
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What one caption mentions, each phrase drawn already; annotators leave things out, so most
/// are sometimes missing.
struct Mentions {
    subject: String,
    hair: Option<String>,
    bald: bool,
    upper: String,
    lower: Option<String>,
    shoes: Option<String>,
    bag: Option<String>,
    hat: Option<String>,
    glasses: Option<&'static str>,
    extras: Vec<String>,
}

fn mentions<R: Rng>(p: &Person, view: View, pro: &Pronouns, rng: &mut R) -> Mentions {
    let subject = subject(p, rng);
    let hair = hair(p, rng).filter(|_| rng.random_bool(0.75));
    let bald = p.hair_length == HairLength::Bald && rng.random_bool(0.6);
    let upper = upper(p, rng, view);
    let lower = Some(lower(p, rng)).filter(|_| rng.random_bool(0.92));
    let shoes = Some(shoes(p, rng)).filter(|_| rng.random_bool(0.6));
    let bag = bag(p, rng, pro).filter(|_| rng.random_bool(0.9));
    let hat = hat(p, rng).filter(|_| rng.random_bool(0.85));
    let glasses = (p.glasses && view != View::Back && rng.random_bool(0.8)).then(|| {
        pick(
            rng,
            &["glasses", "a pair of glasses", "spectacles", "eyeglasses"],
        )
    });
    let extras = extras(p, rng, view);
    Mentions {
        subject,
        hair,
        bald,
        upper,
        lower,
        shoes,
        bag,
        hat,
        glasses,
        extras,
    }
}

/// One caption of `p` as seen in `view`.
pub fn caption<R: Rng>(p: &Person, view: View, rng: &mut R) -> String {
    let pro = pronouns(p);
    let m = mentions(p, view, &pro, rng);

    // Clothes: what the person wears, in a random order of garments.
    let mut worn: Vec<String> = vec![m.upper];
    worn.extend(m.lower);
    if rng.random_bool(0.5) {
        worn.extend(m.shoes.clone());
    }
    if rng.random_bool(0.3) {
        worn.reverse();
    }
    let shoes_later = m.shoes.filter(|s| !worn.contains(s));
    let mut accessories: Vec<String> = Vec::new();
    accessories.extend(m.hat);
    accessories.extend(m.glasses.map(String::from));

    let mut sentences = opening(&m.subject, m.hair.as_deref(), &worn, &pro, rng);
    if m.bald {
        sentences.push(format!(
            "{} {}",
            pro.subject,
            pick(rng, &["is bald", "has a shaved head", "has no hair"])
        ));
    }
    if let Some(s) = shoes_later {
        sentences.push(format!(
            "{} {}",
            pro.subject,
            pick(rng, &["has on {s}", "is wearing {s}", "wears {s}"]).replace("{s}", &s)
        ));
    }
    sentences.extend(closing(m.bag, &accessories, m.extras, &pro, rng));
    join_sentences(&sentences)
}

/// The first sentence or two: subject (+ hair) + clothes, in one of a few shapes.
fn opening<R: Rng>(
    subj: &str,
    hair: Option<&str>,
    worn: &[String],
    pro: &Pronouns,
    rng: &mut R,
) -> Vec<String> {
    let wear_verb = pick(
        rng,
        &[
            "is wearing",
            "wears",
            "is dressed in",
            "has on",
            "is wearing",
        ],
    );
    let mut sentences = Vec::new();
    match rng.random_range(0..4) {
        0 => {
            let hair = hair.map(|h| format!(" with {h}")).unwrap_or_default();
            sentences.push(format!("{subj}{hair} {wear_verb} {}", list(worn)));
        }
        1 => {
            sentences.push(format!("{subj} in {}", list(worn)));
            if let Some(h) = hair {
                sentences.push(format!("{} has {h}", pro.subject));
            }
        }
        2 if hair.is_some() => {
            let h = hair.unwrap_or_default();
            sentences.push(format!("{subj} has {h}"));
            sentences.push(format!("{} {wear_verb} {}", pro.subject, list(worn)));
        }
        _ => {
            sentences.push(format!("{subj} {wear_verb} {}", list(worn)));
            if let Some(h) = hair {
                sentences.push(format!("{} has {h}", pro.subject));
            }
        }
    }
    sentences
}

/// The bag, accessories and extras as clauses in random order, joined into one or two
/// sentences (none when there is nothing to add).
fn closing<R: Rng>(
    bag: Option<String>,
    accessories: &[String],
    extras: Vec<String>,
    pro: &Pronouns,
    rng: &mut R,
) -> Vec<String> {
    let mut tail: Vec<String> = Vec::new();
    if let Some(b) = bag {
        let verb = pick(rng, &["is carrying", "carries", "has", "is carrying"]);
        tail.push(format!("{verb} {b}"));
    }
    if !accessories.is_empty() {
        let verb = pick(rng, &["is wearing", "wears", "is also wearing"]);
        tail.push(format!("{verb} {}", list(accessories)));
    }
    tail.extend(extras.into_iter().map(|e| format!("is {e}")));
    tail.shuffle(rng);
    let mut sentences = Vec::new();
    if !tail.is_empty() {
        let split = if tail.len() > 1 && rng.random_bool(0.5) {
            rng.random_range(1..tail.len())
        } else {
            tail.len()
        };
        let (a, b) = tail.split_at(split);
        sentences.push(format!("{} {}", pro.subject, list(a)));
        if !b.is_empty() {
            sentences.push(format!("{} {}", pro.subject, list(b)));
        }
    }
    sentences
}

/// Capitalised sentences with full stops, at most four.
fn join_sentences(sentences: &[String]) -> String {
    let mut text = String::new();
    for s in sentences.iter().take(4) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&capitalise(s));
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn captions_bind_colours_to_garments() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let p = Person::random(&mut rng);
            let text = caption(&p, View::Front, &mut rng);
            let words = text.to_lowercase();
            assert!(words.ends_with('.'), "{text}");
            let sentences = text.matches('.').count();
            assert!((1..=4).contains(&sentences), "{text}");
            let colour = p.upper_colour.name();
            if !matches!(
                p.upper_colour,
                Colour::Grey | Colour::Black | Colour::Purple
            ) {
                assert!(words.contains(colour), "{text} should name {colour}");
            }
        }
    }
}
