//! The divergence guard: what stops a run that has gone non-finite, for
//! every trainer alike.
//!
//! The optimizer vetoes an update whose loss or gradient norm is NaN/Inf
//! ([`Optimizer::step`]) and records what was non-finite ([`NonFinite`]); a
//! trainer that vetoes its update before reaching the optimizer (PPO's
//! non-finite rollout, or its weights restored after an update) records it
//! the same way ([`Optimizer::veto`]). At the end of each trainer step the
//! session hands the optimizer's counters ([`Optimizer::updates`]) to
//! [`DivergenceGuard::observe`], which sorts the step:
//! - its last update was vetoed: a skipped step. `--max-skipped-steps` (K)
//!   of them in a row stop the run, and a trainable parameter that is itself
//!   non-finite stops it at once (every later step would be NaN as well);
//! - its last update was applied: the streak starts over;
//! - it made no update at all (PPO's ratio guard skipped every minibatch):
//!   the streak stays as it was.
//!
//! The stop ([`Stop`]) names the step, the first non-finite quantity of the
//! streak and the last good checkpoint. The guard's counters are part of the
//! trainer state, so a resumed run stops where an uninterrupted one would.
//! Nothing non-finite is ever written: the session checks the trainable
//! weights before each checkpoint and the final save ([`first_non_finite`]),
//! and `models::checkpoint::save_safetensors` refuses any NaN/Inf tensor.
//!
//! [`Optimizer::step`]: super::optim::Optimizer::step
//! [`Optimizer::veto`]: super::optim::Optimizer::veto
//! [`Optimizer::updates`]: super::optim::Optimizer::updates

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

use crate::device::Gpu;
use crate::models::params::ParamStore;
use crate::ops::grad_clip::grad_norm;
use crate::tensor::Tensor;

/// The first non-finite quantity of a vetoed update, in the order they are
/// looked for: a parameter (the root cause), the loss, the gradients.
#[derive(Clone, Debug, PartialEq)]
pub enum NonFinite {
    /// A trainable parameter holds a NaN/Inf.
    Parameter(String),
    /// The loss value.
    Loss(f32),
    /// The global gradient norm; `first` names the first parameter whose
    /// gradient holds a NaN/Inf (None: every value is finite and the norm
    /// overflowed f32).
    GradNorm { norm: f32, first: Option<String> },
    /// Something a trainer computed before its update (e.g. PPO's rollout).
    Other(String),
}

impl NonFinite {
    /// No later step can recover: the weights themselves are non-finite.
    pub fn is_fatal(&self) -> bool {
        matches!(self, NonFinite::Parameter(_))
    }
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NonFinite::Parameter(name) => write!(f, "non-finite parameter `{name}`"),
            NonFinite::Loss(v) => write!(f, "non-finite loss ({v})"),
            NonFinite::GradNorm { norm, first: Some(name) } => write!(
                f,
                "non-finite gradient norm ({norm}; the gradient of `{name}` holds NaN/Inf)"
            ),
            NonFinite::GradNorm { norm, first: None } => write!(
                f,
                "non-finite gradient norm ({norm}; every gradient value is finite, their squares overflow f32)"
            ),
            NonFinite::Other(what) => write!(f, "non-finite {what}"),
        }
    }
}

/// The name of the first of `named` tensors that holds a NaN/Inf. One GPU
/// norm over all of them settles the common case; only when it is not
/// finite is each tensor's norm taken, and a tensor whose norm is not finite
/// is read back to confirm (the squares of huge finite values overflow too).
pub fn first_non_finite<'a>(
    gpu: &Arc<Gpu>,
    named: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> Result<Option<String>> {
    let named: Vec<(&str, &Tensor)> = named.into_iter().collect();
    if named.is_empty() {
        return Ok(None);
    }
    let all: Vec<&Tensor> = named.iter().map(|(_, t)| *t).collect();
    if grad_norm(gpu, &all)?.item()?.is_finite() {
        return Ok(None);
    }
    for (name, t) in named {
        if !grad_norm(gpu, &[t])?.item()?.is_finite() && t.to_vec()?.iter().any(|v| !v.is_finite())
        {
            return Ok(Some(name.to_string()));
        }
    }
    Ok(None)
}

/// The first non-finite trainable parameter of `params`, if any.
pub fn non_finite_parameter(params: &ParamStore) -> Result<Option<String>> {
    let trainable: Vec<(&str, &Tensor)> = params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| (p.name.as_str(), &p.tensor))
        .collect();
    match trainable.first() {
        Some((_, t)) => first_non_finite(&t.gpu().clone(), trainable),
        None => Ok(None),
    }
}

/// An optimizer's counters as the guard reads them ([`Optimizer::updates`]).
#[derive(Clone, Copy, Debug)]
pub struct Updates<'a> {
    /// Updates applied and vetoed so far.
    pub applied: u32,
    pub vetoed: u32,
    /// Why the latest update was vetoed (None once one was applied).
    pub fault: Option<&'a NonFinite>,
}

/// The guard's counters, kept in the trainer state (checkpointed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardState {
    /// Trainer steps skipped as non-finite over the whole run.
    pub skipped_steps: u64,
    /// Skipped steps in a row, up to the latest.
    pub consecutive: u64,
    /// The first step of the current streak and what was non-finite there.
    pub first: Option<(u64, String)>,
}

/// Why the guard stops a run; [`Stop::message`] is the user's error.
#[derive(Clone, Debug, PartialEq)]
pub struct Stop {
    /// The step the run stopped at.
    pub step: u64,
    /// The streak's first step and its first non-finite quantity.
    pub first_step: u64,
    pub first: String,
    pub consecutive: u64,
    pub max_skipped: u64,
    /// What made it stop at once (a non-finite parameter), if it did.
    pub fatal: Option<String>,
}

impl Stop {
    /// The error: the step, the first non-finite quantity, the flag, and
    /// the last good checkpoint (`(its step, its directory)`) or that none
    /// was saved.
    pub fn message(&self, last_checkpoint: Option<(u64, &Path)>) -> String {
        let why = match &self.fatal {
            Some(what) => format!(
                "training diverged at step {}: {what}, so every later step would be non-finite too",
                self.step
            ),
            None => format!(
                "training diverged: {} steps in a row were skipped as non-finite, up to step {} \
                 (--max-skipped-steps {})",
                self.consecutive, self.step, self.max_skipped
            ),
        };
        format!(
            "{why}; the first was step {}: {}. {}. Nothing non-finite was written.",
            self.first_step,
            self.first,
            last_checkpoint_note(last_checkpoint)
        )
    }
}

/// Where a stopped run can go on from: the last good checkpoint
/// (`(its step, its directory)`), or that none was saved.
pub fn last_checkpoint_note(last_checkpoint: Option<(u64, &Path)>) -> String {
    match last_checkpoint {
        Some((step, dir)) => format!(
            "The last good checkpoint is {} (step {step}): resume from it with --resume and a \
             lower --lr",
            dir.display()
        ),
        None => "No checkpoint was saved (--save-every N writes one every N steps): lower --lr \
                 and start again"
            .to_string(),
    }
}

/// Sorts each trainer step by what the optimizer did since the last one
/// (see the module docs).
#[derive(Clone, Debug)]
pub struct DivergenceGuard {
    pub max_skipped: u64,
    state: GuardState,
    /// The optimizer's (applied, vetoed) counters at the last observation.
    seen: (u32, u32),
}

impl DivergenceGuard {
    /// A guard stopping after `max_skipped` skipped steps in a row, going
    /// on from `state` (a resumed run's), for an optimizer at `now`.
    pub fn new(max_skipped: u32, state: GuardState, now: Updates) -> DivergenceGuard {
        DivergenceGuard {
            max_skipped: max_skipped.max(1) as u64,
            state,
            seen: (now.applied, now.vetoed),
        }
    }

    pub fn state(&self) -> &GuardState {
        &self.state
    }

    /// Sorts trainer step `step` by what the optimizer did since the last
    /// call (`now`: its counters after the step); Some when the run must stop.
    pub fn observe(&mut self, step: u64, now: Updates) -> Option<Stop> {
        let (applied, vetoed) = (now.applied != self.seen.0, now.vetoed != self.seen.1);
        self.seen = (now.applied, now.vetoed);
        match now.fault {
            Some(fault) if vetoed => {
                let s = &mut self.state;
                s.skipped_steps += 1;
                s.consecutive += 1;
                let (first_step, first) = s
                    .first
                    .get_or_insert_with(|| (step, fault.to_string()))
                    .clone();
                let fatal = fault.is_fatal().then(|| fault.to_string());
                (fatal.is_some() || s.consecutive >= self.max_skipped).then_some(Stop {
                    step,
                    first_step,
                    first,
                    consecutive: s.consecutive,
                    max_skipped: self.max_skipped,
                    fatal,
                })
            }
            _ => {
                if applied {
                    self.state.consecutive = 0;
                    self.state.first = None;
                }
                None
            }
        }
    }
}
