//! The heads on a [`CausalLm`]'s trunk besides the LM head: TRL's value head
//! (`v_head.summary`, PPO) and the sequence-classification score head (reward
//! models), and the swaps that put a fresh one on.

use anyhow::{anyhow, ensure, Result};

use super::{CausalLm, Head};
use crate::models::config::{SCORE, V_HEAD_B, V_HEAD_W};
use crate::models::layers::Fwd;
use crate::models::params::ParamStore;
use crate::ops::matmul::matmul;
use crate::ops::row_gather::row_gather;
use crate::tape::Var;
use crate::tensor::Tensor;

impl CausalLm {
    /// Puts a fresh TRL value head (`v_head.summary`, `nn.Linear(C, 1)`) on a
    /// plain LM, initialised as torch initialises a Linear: weight and bias
    /// U(±1/√C), from a seeded RNG. The head is trainable, also when LoRA
    /// adapters are attached (TRL trains it next to the adapters).
    pub fn add_value_head(&mut self, seed: u64) -> Result<()> {
        ensure!(
            self.head == Head::Lm,
            "add_value_head needs a plain LM head, this model has {:?}",
            self.head
        );
        let c = self.cfg.hidden;
        let bound = 1.0 / (c as f32).sqrt();
        let mut rng = crate::rng::Rng::new(seed);
        let w = rng.vec(c, bound);
        let b = rng.vec(1, bound);
        self.params
            .insert(V_HEAD_W, Tensor::from_f32(&self.gpu, &[1, c], &w)?);
        self.params
            .insert(V_HEAD_B, Tensor::from_f32(&self.gpu, &[1], &b)?);
        let trainable: Vec<String> = self
            .params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.name.clone())
            .collect();
        self.params
            .set_trainable(|n| n.starts_with("v_head.") || trainable.iter().any(|t| t == n));
        self.head = Head::LmWithValue;
        Ok(())
    }

    /// TRL's value head at every position: [B, T].
    pub fn values(&self, f: &Fwd, hidden: &Var) -> Result<Var> {
        ensure!(
            self.head == Head::LmWithValue,
            "this checkpoint has no value head (v_head.summary.*)"
        );
        let v = matmul(
            f.tape,
            hidden,
            f.p(V_HEAD_W)?,
            Some(f.p(V_HEAD_B)?),
            false,
            true,
        )?;
        f.tape.reshape(&v, &[f.tokens.batch, f.tokens.seq])
    }

    /// Reward-head logits [B, labels] at each sequence's last real token (as
    /// transformers picks it, whatever the padding side); an encoder's own
    /// head reads the first token instead.
    pub fn scores(&self, f: &Fwd, hidden: &Var) -> Result<Var> {
        ensure!(
            self.head == Head::Reward,
            "this checkpoint has no sequence-classification head (score.weight)"
        );
        if let Some(logits) = self.arch.classify(f, &self.cfg, hidden)? {
            return Ok(logits);
        }
        let t = f.tokens;
        let mut idx = Vec::with_capacity(t.batch);
        for b in 0..t.batch {
            let row = &t.mask[b * t.seq..(b + 1) * t.seq];
            let last = row
                .iter()
                .rposition(|&m| m == 1)
                .ok_or_else(|| anyhow!("sequence {b} has no real token"))?;
            idx.push((b * t.seq + last) as i32);
        }
        let flat = f
            .tape
            .reshape(hidden, &[t.batch * t.seq, self.cfg.hidden])?;
        let picked = row_gather(f.tape, &flat, &idx)?;
        matmul(f.tape, &picked, f.p(SCORE)?, None, false, true)
    }

    /// Swaps the LM (or value) head for a fresh sequence-classification head:
    /// `score.weight` [num_labels, C] ~ normal(0, initializer_range) from
    /// `seed`, as transformers initialises it; the config becomes
    /// `*ForSequenceClassification` with `id2label` and a `pad_token_id`
    /// (the EOS id when the model has none). For reward-model training.
    pub fn into_reward_model(mut self, num_labels: usize, seed: u64) -> Result<CausalLm> {
        ensure!(num_labels > 0, "a reward head needs at least one label");
        if self.arch.is_encoder() {
            ensure!(
                num_labels == self.cfg.num_labels,
                "this encoder classifier has {} labels, not {num_labels}; engine keeps an encoder's own head",
                self.cfg.num_labels
            );
            return Ok(self);
        }
        ensure!(
            self.lora.is_none(),
            "switch heads before attaching LoRA adapters"
        );
        let c = self.cfg.hidden;
        let lm_head = self.arch.lm_head_params(&self.cfg);
        let mut params = ParamStore::default();
        for p in self.params.iter() {
            let lm_only = lm_head.contains(&p.name) || p.name.starts_with("v_head.");
            if !lm_only && p.name != SCORE {
                params.insert(&p.name, p.tensor.clone());
            }
        }
        let cfg = &mut self.cfg;
        let std = cfg.raw.get("initializer_range").and_then(|v| v.as_f64());
        let w = crate::rng::Rng::new(seed).normals(num_labels * c, std.unwrap_or(0.02) as f32);
        params.insert(SCORE, Tensor::from_f32(&self.gpu, &[num_labels, c], &w)?);
        cfg.num_labels = num_labels;
        cfg.pad_token_id = cfg.pad_token_id.or(cfg.eos_token_id);
        let arch = self.arch.class_name_for(cfg, Head::Reward);
        let id2label: serde_json::Map<String, serde_json::Value> = (0..num_labels)
            .map(|i| (i.to_string(), format!("LABEL_{i}").into()))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = (0..num_labels)
            .map(|i| (format!("LABEL_{i}"), i.into()))
            .collect();
        if let Some(raw) = cfg.raw.as_object_mut() {
            raw.insert("architectures".into(), serde_json::json!([arch]));
            raw.insert("num_labels".into(), num_labels.into());
            raw.insert("id2label".into(), id2label.into());
            raw.insert("label2id".into(), label2id.into());
            raw.insert("pad_token_id".into(), cfg.pad_token_id.into());
        }
        self.params = params;
        self.head = Head::Reward;
        Ok(self)
    }
}
