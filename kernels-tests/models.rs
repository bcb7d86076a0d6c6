//! Model tests: Hugging Face config and checkpoint handling, and (with the
//! model code) parity with transformers on the fixtures in models/fixtures/.

mod common;
mod model;
