//! Training-data tests: TRL formats from small fixtures in fixtures/data/ and
//! the real datasets in ../shared/datasets (hh-rlhf, IMDB, bitext; beside the
//! checkout, not in it), templates,
//! tokenisation with the real GPT-2 tokenizer, padding, splits and epochs.
//! CPU only: `cargo test --release --test data`.

#[path = "common/scratch.rs"]
mod scratch;

mod data {
    pub mod batching;
    pub mod chat_templates;
    pub mod encoding;
    pub mod errors;
    pub mod formats;
    pub mod helpers;
    pub mod pairs;
    pub mod real;
    pub mod sft_eos;
    /// The customer-support data set (`src/data/support/`).
    pub mod support {
        pub mod fluency;
        pub mod generate;
        pub mod safety;
    }
    pub mod templates;
}
