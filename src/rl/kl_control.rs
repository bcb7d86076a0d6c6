//! The KL coefficient β of PPO's reward penalty: TRL 0.11's adaptive and
//! fixed controllers.

/// Something that owns the KL coefficient β and updates it after each step.
pub trait KlController {
    fn value(&self) -> f64;
    /// Called once per PPO step with the step's `objective/kl` and
    /// `n_steps` = the batch size (times the number of processes).
    fn update(&mut self, current_kl: f64, n_steps: usize);
}

/// Ziegler et al. (2019)'s adaptive KL controller (TRL's `AdaptiveKLController`):
/// `e = clip(KL/target − 1, −0.2, 0.2)`, `β ← β·(1 + e·n_steps/horizon)`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveKlController {
    /// The current β.
    pub value: f64,
    pub target: f64,
    pub horizon: f64,
}

impl AdaptiveKlController {
    pub fn new(init_kl_coef: f64, target: f64, horizon: f64) -> Self {
        AdaptiveKlController {
            value: init_kl_coef,
            target,
            horizon,
        }
    }

    pub fn update(&mut self, current_kl: f64, n_steps: usize) {
        let e = (current_kl / self.target - 1.0).clamp(-0.2, 0.2);
        self.value *= 1.0 + e * n_steps as f64 / self.horizon;
    }
}

impl KlController for AdaptiveKlController {
    fn value(&self) -> f64 {
        self.value
    }
    fn update(&mut self, current_kl: f64, n_steps: usize) {
        AdaptiveKlController::update(self, current_kl, n_steps)
    }
}

/// A constant β (TRL's `FixedKLController`): `update` does nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedKlController {
    pub value: f64,
}

impl FixedKlController {
    pub fn new(kl_coef: f64) -> Self {
        FixedKlController { value: kl_coef }
    }
}

impl KlController for FixedKlController {
    fn value(&self) -> f64 {
        self.value
    }
    fn update(&mut self, _current_kl: f64, _n_steps: usize) {}
}
