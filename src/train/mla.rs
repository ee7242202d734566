//! Multi-level alignment (MLA): each training sample becomes three image/text pairs — three
//! independently augmented views of the image paired with the caption (sentence level), one of
//! its phrases (phrase level) and a random subset of its attribute phrases (word level).

use rand::seq::IndexedRandom;
use rand::Rng;

use crate::data::{contiguous_labels, DatasetImage};
use crate::text::{attribute_phrases, split_phrases, PosTagger};

/// One (image, caption) pair of the training set with its precomputed texts.
#[derive(Debug, Clone)]
pub struct TrainSample {
    /// Index of the image in the dataset's image list.
    pub image: usize,
    /// Contiguous person label.
    pub label: usize,
    /// The caption, lowercased (sentence level).
    pub sentence: String,
    /// Phrase-level candidates (`split_txt`); never empty (falls back to the sentence).
    pub phrases: Vec<String>,
    /// Noun/adjective attribute phrases; may be empty (word level then uses a phrase).
    pub attributes: Vec<String>,
}

/// One sample per (image, caption), labels made contiguous. Tags every caption once, up front.
pub fn training_samples(images: &[DatasetImage], tagger: &PosTagger) -> Vec<TrainSample> {
    let labels = contiguous_labels(images);
    let mut samples = Vec::new();
    for (index, (image, &label)) in images.iter().zip(&labels).enumerate() {
        for caption in &image.captions {
            let sentence = caption.to_lowercase();
            let mut phrases = split_phrases(caption);
            if phrases.is_empty() {
                phrases.push(sentence.clone());
            }
            samples.push(TrainSample {
                image: index,
                label,
                sentence,
                phrases,
                attributes: attribute_phrases(tagger, caption),
            });
        }
    }
    samples
}

impl TrainSample {
    /// The three texts of this sample: sentence, one phrase, and a random non-empty subset of
    /// the attribute phrases joined by ',' (a phrase when there are none).
    pub fn mla_texts<R: Rng>(&self, rng: &mut R) -> [String; 3] {
        let phrase = self
            .phrases
            .choose(rng)
            .cloned()
            .unwrap_or_else(|| self.sentence.clone());
        let word = if self.attributes.is_empty() {
            phrase.clone()
        } else {
            let n = rng.random_range(1..=self.attributes.len());
            let mut picked = rand::seq::index::sample(rng, self.attributes.len(), n).into_vec();
            picked.sort_unstable();
            let parts: Vec<&str> = picked
                .iter()
                .map(|&i| self.attributes[i].as_str())
                .collect();
            parts.join(",")
        };
        [self.sentence.clone(), phrase, word]
    }
}
