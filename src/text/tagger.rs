//! Part-of-speech tagging with the greedy averaged perceptron of Matthew Honnibal, the algorithm
//! behind NLTK's `PerceptronTagger`: same features, word normalisation and tie-breaking (highest
//! score, then the alphabetically last tag), so the shipped weights tag exactly as in Python.
//!
//! The weights are those of PyPI `textblob-aptagger` 0.2.0 (`trontagger-0.1.0.pickle`,
//! Copyright 2013 Matthew Honnibal, MIT license), converted by `scripts/convert_pos_tagger.py`
//! into `models/pos-tagger.bin` and compiled into the binary.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The converted weights (see the module documentation for their origin and license).
const WEIGHTS: &[u8] = include_bytes!("../../models/pos-tagger.bin");
const MAGIC: &[u8] = b"IVTPOS1\n";
const START: [&str; 2] = ["-START-", "-START2-"];
const END: [&str; 2] = ["-END-", "-END2-"];

/// Errors reading a weights file.
#[derive(Debug, thiserror::Error)]
pub enum TaggerError {
    /// The file is not in the layout `scripts/convert_pos_tagger.py` writes.
    #[error("malformed POS tagger weights: {0}")]
    Malformed(String),
}

/// An averaged-perceptron POS tagger (Penn Treebank tags).
#[derive(Debug, Clone)]
pub struct PosTagger {
    classes: Vec<String>,
    /// Frequent, unambiguous words tagged without the model.
    tagdict: HashMap<String, u8>,
    /// Feature → (class, weight) pairs.
    weights: HashMap<String, Vec<(u8, f64)>>,
}

impl PosTagger {
    /// The shipped tagger, parsed once per process.
    pub fn builtin() -> &'static PosTagger {
        static TAGGER: OnceLock<PosTagger> = OnceLock::new();
        TAGGER.get_or_init(|| {
            PosTagger::from_bytes(WEIGHTS).expect("the compiled-in tagger weights are valid")
        })
    }

    /// Parses weights written by `scripts/convert_pos_tagger.py`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TaggerError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(TaggerError::Malformed("bad magic".into()));
        }
        let n_classes = r.u8()? as usize;
        let classes = (0..n_classes)
            .map(|_| r.string(1))
            .collect::<Result<Vec<_>, _>>()?;
        let n_tags = r.u32()? as usize;
        let mut tagdict = HashMap::with_capacity(n_tags);
        for _ in 0..n_tags {
            let word = r.string(1)?;
            tagdict.insert(word, r.class(n_classes)?);
        }
        let n_features = r.u32()? as usize;
        let mut weights = HashMap::with_capacity(n_features);
        for _ in 0..n_features {
            let name = r.string(2)?;
            let count = r.u8()? as usize;
            let mut w = Vec::with_capacity(count);
            for _ in 0..count {
                let class = r.class(n_classes)?;
                w.push((class, f64::from(r.i32()?) / 1000.0));
            }
            weights.insert(name, w);
        }
        Ok(Self {
            classes,
            tagdict,
            weights,
        })
    }

    /// Tags a text: tokenised by [`tokenize`], one tag per token.
    pub fn tag_text<'a>(&self, text: &'a str) -> Vec<(&'a str, &str)> {
        self.tag_sentences(&tokenize(text))
    }

    /// Tags tokenised sentences. The previous two tags carry over from one sentence to the next,
    /// as in textblob-aptagger.
    pub fn tag_sentences<'a>(&self, sentences: &[Vec<&'a str>]) -> Vec<(&'a str, &str)> {
        let (mut prev, mut prev2) = (START[0], START[1]);
        let mut out = Vec::new();
        for words in sentences {
            let mut context: Vec<String> = START.iter().map(|s| s.to_string()).collect();
            context.extend(words.iter().map(|w| normalize(w)));
            context.extend(END.iter().map(|s| s.to_string()));
            for (i, &word) in words.iter().enumerate() {
                let class = match self.tagdict.get(word) {
                    Some(&c) => c,
                    None => self.predict(&features(i, word, &context, prev, prev2)),
                };
                let tag = self.classes[class as usize].as_str();
                out.push((word, tag));
                prev2 = prev;
                prev = tag;
            }
        }
        out
    }

    /// The best class: scores summed in feature order (as Python does, so rounding matches),
    /// ties broken towards the alphabetically last tag.
    fn predict(&self, features: &[String]) -> u8 {
        let mut scores = vec![0f64; self.classes.len()];
        for feature in features {
            for &(class, weight) in self.weights.get(feature).into_iter().flatten() {
                scores[class as usize] += weight;
            }
        }
        // Classes are stored sorted, so the last maximum is the alphabetically last tag.
        let mut best = 0;
        for (c, &s) in scores.iter().enumerate() {
            if s >= scores[best] {
                best = c;
            }
        }
        best as u8
    }
}

/// The tagger's word normalisation: hyphenated words, years and numbers become classes.
fn normalize(word: &str) -> String {
    let mut chars = word.chars();
    let first = chars.next();
    if word.contains('-') && first != Some('-') {
        "!HYPHEN".into()
    } else if word.chars().count() == 4 && word.chars().all(|c| c.is_numeric()) {
        "!YEAR".into()
    } else if first.is_some_and(|c| c.is_numeric()) {
        "!DIGITS".into()
    } else {
        word.to_lowercase()
    }
}

/// The last (up to) three characters, as Python's `word[-3:]`.
fn suffix(word: &str) -> &str {
    match word.char_indices().rev().nth(2) {
        Some((i, _)) => &word[i..],
        None => word,
    }
}

/// The features of word `i` of a sentence, in the order of `_get_features`.
fn features(i: usize, word: &str, context: &[String], prev: &str, prev2: &str) -> Vec<String> {
    let i = i + START.len();
    let first: String = word.chars().take(1).collect();
    vec![
        "bias".to_string(),
        format!("i suffix {}", suffix(word)),
        format!("i pref1 {first}"),
        format!("i-1 tag {prev}"),
        format!("i-2 tag {prev2}"),
        format!("i tag+i-2 tag {prev} {prev2}"),
        format!("i word {}", context[i]),
        format!("i-1 tag+i word {prev} {}", context[i]),
        format!("i-1 word {}", context[i - 1]),
        format!("i-1 suffix {}", suffix(&context[i - 1])),
        format!("i-2 word {}", context[i - 2]),
        format!("i+1 word {}", context[i + 1]),
        format!("i+1 suffix {}", suffix(&context[i + 1])),
        format!("i+2 word {}", context[i + 2]),
    ]
}

/// Splits a caption into sentences of tokens: words (letters and digits, with inner hyphens),
/// clitics such as `'s`, and every other non-space character alone. A sentence ends after `.`,
/// `!` or `?`.
pub fn tokenize(text: &str) -> Vec<Vec<&str>> {
    let mut sentences = Vec::new();
    let mut current = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        let len = token_len(rest);
        let token = &rest[..len];
        rest = &rest[len..];
        current.push(token);
        if matches!(token, "." | "!" | "?") {
            sentences.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        sentences.push(current);
    }
    sentences
}

/// Byte length of the token at the start of `s` (which starts with a non-space character).
fn token_len(s: &str) -> usize {
    let word_len = |s: &str| s.find(|c: char| !c.is_alphanumeric()).unwrap_or(s.len());
    let mut chars = s.chars();
    let first = chars.next().map_or(' ', |c| c);
    if first == '\'' && chars.next().is_some_and(char::is_alphanumeric) {
        return 1 + word_len(&s[1..]);
    }
    if !first.is_alphanumeric() {
        return first.len_utf8();
    }
    let mut len = word_len(s);
    // Inner hyphens join words ("t-shirt", "long-sleeved").
    while s[len..].starts_with('-') && s[len + 1..].starts_with(char::is_alphanumeric) {
        len += 1 + word_len(&s[len + 1..]);
    }
    len
}

/// A cursor over the weights file.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TaggerError> {
        let end = self.pos + n;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| TaggerError::Malformed(format!("truncated at byte {}", self.pos)))?;
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, TaggerError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, TaggerError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Result<i32, TaggerError> {
        Ok(self.u32()? as i32)
    }

    fn class(&mut self, n_classes: usize) -> Result<u8, TaggerError> {
        let c = self.u8()?;
        if c as usize >= n_classes {
            return Err(TaggerError::Malformed(format!("class {c} out of range")));
        }
        Ok(c)
    }

    /// A UTF-8 string prefixed by its length in `width` (1 or 2) bytes.
    fn string(&mut self, width: usize) -> Result<String, TaggerError> {
        let len = match width {
            1 => self.u8()? as usize,
            _ => {
                let b = self.take(2)?;
                u16::from_le_bytes([b[0], b[1]]) as usize
            }
        };
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| TaggerError::Malformed(format!("invalid UTF-8 before byte {}", self.pos)))
    }
}
