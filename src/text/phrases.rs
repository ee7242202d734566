//! The texts of multi-level alignment (MLA): phrase-level candidates as the authors' `split_txt`
//! makes them, and word-level attribute phrases ("black backpack", "red shoes") found by
//! part-of-speech tagging.

use super::tagger::PosTagger;

/// Parts of this many characters or fewer are too short to describe anything.
const MIN_PHRASE_CHARS: usize = 5;

/// Phrase-level candidates of a caption, as the authors' `split_txt`: lowercase, split into
/// sentences on '.', then for each sentence its longest comma-separated part and the other parts
/// re-joined by commas; parts of 5 characters or fewer dropped, surrounding spaces stripped.
pub fn split_phrases(caption: &str) -> Vec<String> {
    let lower = caption.to_lowercase();
    let mut out = Vec::new();
    for sentence in lower.split('.') {
        let parts: Vec<&str> = sentence.split(',').collect();
        let Some(longest) = longest_part(&parts) else {
            continue;
        };
        let rest: Vec<&str> = parts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != longest)
            .map(|(_, p)| *p)
            .collect();
        for candidate in [parts[longest].to_string(), rest.join(",")] {
            let candidate = candidate.trim();
            if candidate.chars().count() > MIN_PHRASE_CHARS {
                out.push(candidate.to_string());
            }
        }
    }
    out
}

/// Index of the first longest part (in characters), as Python's `max(parts, key=len)`.
fn longest_part(parts: &[&str]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, part) in parts.iter().enumerate() {
        let len = part.chars().count();
        if best.is_none_or(|(_, l)| len > l) {
            best = Some((i, len));
        }
    }
    best.map(|(i, _)| i)
}

/// Word-level attribute phrases of a caption: each run of nouns (NN*) with the adjectives (JJ*)
/// directly before it ("long blue skirt"), and bare nouns ("backpack"); lowercased.
pub fn attribute_phrases(tagger: &PosTagger, caption: &str) -> Vec<String> {
    let tagged = tagger.tag_text(caption);
    let mut phrases = Vec::new();
    let mut adjectives: Vec<&str> = Vec::new();
    let mut nouns: Vec<&str> = Vec::new();
    for (word, tag) in tagged {
        if tag.starts_with("NN") {
            nouns.push(word);
            continue;
        }
        flush(&mut phrases, &mut adjectives, &mut nouns);
        if tag.starts_with("JJ") {
            adjectives.push(word);
        } else {
            adjectives.clear();
        }
    }
    flush(&mut phrases, &mut adjectives, &mut nouns);
    phrases
}

/// Emits the pending adjectives + nouns as one phrase if there is a noun.
fn flush(phrases: &mut Vec<String>, adjectives: &mut Vec<&str>, nouns: &mut Vec<&str>) {
    if !nouns.is_empty() {
        let words: Vec<&str> = adjectives.iter().chain(nouns.iter()).copied().collect();
        phrases.push(words.join(" ").to_lowercase());
        adjectives.clear();
        nouns.clear();
    }
}
