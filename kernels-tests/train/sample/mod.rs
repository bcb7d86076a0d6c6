//! The sampling commands' parts on the tiny fixture models (helpers and
//! fixtures from [`super::dpo`]): best-of-n selection and its SFT JSONL,
//! text metrics by hand, and eval's KL of a model to itself.

mod best_of_n;
mod eval;
mod text_metrics;
