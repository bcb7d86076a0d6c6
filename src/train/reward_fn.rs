//! Reward functions of the decoded text ([`RewardFn`]): one scalar per
//! (prompt, response). Every reward function is a
//! [`Scorer`](super::scoring::Scorer), so PPO, eval and best-of-n take them
//! where they take a reward model.

use anyhow::Result;

use super::scoring::{Sample, Scorer};

/// A reward function: one scalar per (prompt, response). `response_ids`
/// includes the EOS when the response ended on one.
pub trait RewardFn {
    fn reward(&self, prompt: &str, response: &str, response_ids: &[u32]) -> f32;
}

impl<F: Fn(&str, &str, &[u32]) -> f32> RewardFn for F {
    fn reward(&self, prompt: &str, response: &str, response_ids: &[u32]) -> f32 {
        self(prompt, response, response_ids)
    }
}

impl<T: RewardFn> Scorer for T {
    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(samples
            .iter()
            .map(|s| self.reward(s.prompt, s.response, s.response_ids))
            .collect())
    }
}

/// The fraction of response tokens equal to `token` (EOS included in the
/// count of tokens): a simple deterministic reward for tests and demos.
#[derive(Clone, Copy, Debug)]
pub struct TargetTokenRate {
    pub token: u32,
}

impl RewardFn for TargetTokenRate {
    fn reward(&self, _prompt: &str, _response: &str, ids: &[u32]) -> f32 {
        if ids.is_empty() {
            return 0.0;
        }
        ids.iter().filter(|&&t| t == self.token).count() as f32 / ids.len() as f32
    }
}

/// +1 for each keyword that occurs in the response text (each counted once).
#[derive(Clone, Debug)]
pub struct Keyword {
    pub keywords: Vec<String>,
    pub case_sensitive: bool,
}

impl Keyword {
    pub fn new(keywords: &[&str]) -> Keyword {
        Keyword {
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            case_sensitive: false,
        }
    }
}

impl RewardFn for Keyword {
    fn reward(&self, _prompt: &str, response: &str, _ids: &[u32]) -> f32 {
        let fold = |s: &str| {
            if self.case_sensitive {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let text = fold(response);
        self.keywords
            .iter()
            .filter(|k| text.contains(&fold(k)))
            .count() as f32
    }
}
