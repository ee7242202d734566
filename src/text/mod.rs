//! Text preprocessing: BERT-base-uncased WordPiece tokenisation.

mod tokenizer;

pub use tokenizer::{TextError, TextTokenizer, TokenBatch, Tokenized};
