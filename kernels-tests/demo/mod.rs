//! The out-of-the-box demo: tokenizer training, new models, the support-tiny
//! pipeline and `engine train-ppo` with no model, and its report.

mod build;
mod build_encoder;
mod pipeline;
