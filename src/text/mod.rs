//! Text preprocessing: BERT-base-uncased WordPiece tokenisation, and the phrase- and word-level
//! texts of multi-level alignment (phrase splitting, part-of-speech tagging).

pub mod phrases;
pub mod tagger;
mod tokenizer;

pub use phrases::{attribute_phrases, split_phrases};
pub use tagger::{PosTagger, TaggerError};
pub use tokenizer::{TextError, TextTokenizer, TokenBatch, Tokenized};
