//! What an encoded row is: token ids (and masks) per trainer, each with the
//! row's origin for error messages. [`super::encode::Encoder`] builds them.

use super::dataset::Origin;

/// `ids` and a `loss_mask` aligned with them: 1 where the token is a target
/// of the loss (the mask `CausalLm::lm_loss` takes), 0 for prompt tokens
/// under completion-only training.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftExample {
    pub ids: Vec<i32>,
    pub loss_mask: Vec<i32>,
    pub origin: Origin,
}

/// Responses without the prompt; the batch joins them. Built by
/// [`Encoder::preference`](super::encode::Encoder::preference) (TRL 1.16's DPO tokenization, see `pairs.rs`)
/// or [`Encoder::reward_pair`](super::encode::Encoder::reward_pair) (whole texts, no prompt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferenceExample {
    pub prompt_ids: Vec<i32>,
    pub chosen_ids: Vec<i32>,
    pub rejected_ids: Vec<i32>,
    pub origin: Origin,
}

impl PreferenceExample {
    /// Chosen and rejected are the same tokens (e.g. after truncation):
    /// the pair teaches nothing.
    pub fn is_tie(&self) -> bool {
        self.chosen_ids == self.rejected_ids
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtoExample {
    pub prompt_ids: Vec<i32>,
    pub completion_ids: Vec<i32>,
    pub label: bool,
    pub origin: Origin,
}

/// A generation prompt (PPO, eval), ending at the template's generation point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptExample {
    pub prompt_ids: Vec<i32>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifierExample {
    pub ids: Vec<i32>,
    pub label: usize,
    pub origin: Origin,
}
