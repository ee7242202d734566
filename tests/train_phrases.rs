//! MLA texts: phrase splitting against the authors' `split_txt` (golden `phrases.json`), the POS
//! tagger against the original Python tagger on the same weights (`tagged.json`, made by
//! `scripts/tagger_reference.py`), and the attribute phrases built on it.

use std::collections::BTreeMap;

use ivt::text::{attribute_phrases, split_phrases, PosTagger};

fn read<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(format!("tests/fixtures/phrases/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn phrases_match_the_authors_split_txt() {
    let golden: BTreeMap<String, Vec<String>> = read("phrases.json");
    assert!(golden.len() >= 5);
    for (caption, want) in golden {
        assert_eq!(split_phrases(&caption), want, "caption {caption:?}");
    }
}

#[test]
fn tagger_matches_the_python_tagger_token_for_token() {
    let golden: BTreeMap<String, Vec<(String, String)>> = read("tagged.json");
    let tagger = PosTagger::builtin();
    for (caption, want) in golden {
        let got: Vec<(String, String)> = tagger
            .tag_text(&caption)
            .into_iter()
            .map(|(w, t)| (w.to_string(), t.to_string()))
            .collect();
        assert_eq!(got, want, "caption {caption:?}");
    }
}

#[test]
fn attribute_phrases_join_adjectives_to_their_nouns() {
    let tagger = PosTagger::builtin();
    let caption = "The lady walks, she wears a long blue skirt, white shirt, and red shoes. \
                   She has a black purse.";
    assert_eq!(
        attribute_phrases(tagger, caption),
        [
            "lady",
            "long blue skirt",
            "white shirt",
            "red shoes",
            "black purse"
        ]
    );
    let caption = "A woman wearing a red coat, black pants and carrying a backpack.";
    assert_eq!(
        attribute_phrases(tagger, caption),
        ["woman", "red coat", "black pants", "backpack"]
    );
    assert!(attribute_phrases(tagger, "walking quickly").is_empty());
}

#[test]
fn corrupt_weights_are_rejected() {
    assert!(PosTagger::from_bytes(b"IVTPOS1\n\x02\x02NN").is_err());
    assert!(PosTagger::from_bytes(b"nonsense").is_err());
}
