//! The tokenizer and generation files that transformers' `save_pretrained`
//! writes beside the weights, so `AutoTokenizer` gets the pad token and the
//! chat template and `generate` the special ids:
//!
//! - tokenizer_config.json: the loaded model's own (kept as it was) with
//!   `bos_token`, `eos_token`, `unk_token`, `pad_token`, `chat_template`,
//!   `model_max_length` and `tokenizer_class` filled in where missing;
//! - special_tokens_map.json: the special tokens alone;
//! - generation_config.json: `bos_token_id`, `eos_token_id`, `pad_token_id`.
//!
//! GPT-2 and GPT-NeoX tokenizers use `<|endoftext|>` as BOS, EOS and UNK.
//! The pad token is the tokenizer's own, else `<|padding|>` (NeoX), else
//! the EOS, as TRL sets `pad_token = eos_token` (the same choice as
//! `data::pad_id`).

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

use super::checkpoint::write_atomic;
use super::lm::CausalLm;

pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const SPECIAL_TOKENS_FILE: &str = "special_tokens_map.json";
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The transformers release whose file layout these follow.
const TRANSFORMERS_VERSION: &str = "5.23.0";

/// `dir`'s tokenizer_config.json, with chat_template.jinja (transformers'
/// separate template file) folded in as `chat_template`; None when neither exists.
pub fn read_tokenizer_config(dir: &Path) -> Result<Option<Map<String, Value>>> {
    let path = dir.join(TOKENIZER_CONFIG_FILE);
    let mut cfg = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        match serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))? {
            Value::Object(m) => Some(m),
            _ => anyhow::bail!("{}: expected a JSON object", path.display()),
        }
    } else {
        None
    };
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        let text = std::fs::read_to_string(&jinja)
            .with_context(|| format!("reading {}", jinja.display()))?;
        cfg.get_or_insert_with(Map::new)
            .insert("chat_template".into(), Value::String(text));
    }
    Ok(cfg)
}

/// generation_config.json's `eos_token_id` (one id or a list), None when
/// the file or the key is absent. transformers' `generate` stops on these,
/// not on config.json's: Llama 3 base configs say 128001 there and list
/// 128001, 128008 and 128009 here.
pub fn read_generation_eos(dir: &Path) -> Result<Option<Vec<u32>>> {
    let path = dir.join(GENERATION_CONFIG_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let id = |x: &Value| x.as_u64().and_then(|n| u32::try_from(n).ok());
    let ids = match v.get("eos_token_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a.iter().map(id).collect::<Option<Vec<u32>>>(),
        Some(x) => id(x).map(|n| vec![n]),
    };
    match ids {
        Some(ids) if !ids.is_empty() => Ok(Some(ids)),
        _ => anyhow::bail!(
            "{}: `eos_token_id` = {} is invalid: expected a token id or a list of them",
            path.display(),
            v["eos_token_id"]
        ),
    }
}

/// A special token's text: a string, or an AddedToken object's `content`.
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl CausalLm {
    /// Sets (or with None removes) the `chat_template` written on save.
    pub fn set_chat_template(&mut self, template: Option<String>) {
        let cfg = self.tokenizer_config.get_or_insert_with(Map::new);
        match template {
            Some(t) => cfg.insert("chat_template".into(), Value::String(t)),
            None => cfg.remove("chat_template"),
        };
    }

    /// The tokenizer_config.json this model saves (None without a tokenizer).
    pub fn hf_tokenizer_config(&self) -> Option<Map<String, Value>> {
        let tok = self.tokenizer.as_ref()?;
        let mut cfg = self.tokenizer_config.clone().unwrap_or_default();
        let has = |t: &str| tok.token_to_id(t).is_some();
        let endoftext = has("<|endoftext|>").then(|| "<|endoftext|>".to_string());
        // Else (a SentencePiece tokenizer of `engine init`) the config's ids name them.
        let by_id = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
        let unk = has("<unk>").then(|| "<unk>".to_string());
        for (name, fallback) in [
            ("bos_token", by_id(self.cfg.bos_token_id)),
            ("eos_token", by_id(self.cfg.eos_token_id)),
            ("unk_token", unk),
        ] {
            if token_text(cfg.get(name)).is_none() {
                if let Some(t) = endoftext.clone().or(fallback) {
                    cfg.insert(name.into(), Value::String(t));
                }
            }
        }
        if token_text(cfg.get("pad_token")).is_none() {
            let pad = tok
                .get_padding()
                .map(|p| p.pad_token.clone())
                .or_else(|| has("<|padding|>").then(|| "<|padding|>".to_string()))
                .or_else(|| token_text(cfg.get("eos_token")));
            if let Some(p) = pad {
                cfg.insert("pad_token".into(), Value::String(p));
            }
        }
        let model_type = self.cfg.to_json("float32")["model_type"].clone();
        let class = match model_type.as_str() {
            Some("gpt2") => "GPT2Tokenizer",
            Some("gpt_neox") => "GPTNeoXTokenizer",
            _ => "PreTrainedTokenizerFast",
        };
        // transformers 5 names its generic fast tokenizer TokenizersBackend,
        // which 4.x (what TRL 0.11 and PEFT 0.13 run on) cannot import;
        // PreTrainedTokenizerFast reads the same tokenizer.json in both.
        if cfg.get("tokenizer_class") == Some(&json!("TokenizersBackend")) {
            cfg.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        }
        cfg.entry("tokenizer_class").or_insert_with(|| json!(class));
        // The positions the model has (RoBERTa's: two fewer than its rows).
        cfg.entry("model_max_length")
            .or_insert_with(|| json!(self.max_length()));
        cfg.entry("clean_up_tokenization_spaces")
            .or_insert(json!(false));
        Some(cfg)
    }

    /// Writes tokenizer.json with tokenizer_config.json and
    /// special_tokens_map.json into `dir` (an adapter directory: TRL saves
    /// the tokenizer beside the adapter); nothing without a tokenizer.
    pub fn save_tokenizer(&self, dir: &Path) -> Result<()> {
        let Some(tok) = &self.tokenizer else {
            return Ok(());
        };
        let json = tok
            .to_string(true)
            .map_err(|e| anyhow::anyhow!("serialising tokenizer: {e}"))?;
        write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
        self.save_token_files(dir).map(|_| ())
    }

    /// Writes tokenizer_config.json and special_tokens_map.json; returns the
    /// special tokens by name.
    fn save_token_files(&self, dir: &Path) -> Result<Map<String, Value>> {
        let cfg = self.hf_tokenizer_config();
        let tokens: Map<String, Value> = ["bos_token", "eos_token", "unk_token", "pad_token"]
            .into_iter()
            .filter_map(|n| Some((n.to_string(), json!(token_text(cfg.as_ref()?.get(n))?))))
            .collect();
        if let Some(cfg) = &cfg {
            let text = serde_json::to_string_pretty(cfg)?;
            write_atomic(&dir.join(TOKENIZER_CONFIG_FILE), (text + "\n").as_bytes())?;
            let text = serde_json::to_string_pretty(&tokens)?;
            write_atomic(&dir.join(SPECIAL_TOKENS_FILE), (text + "\n").as_bytes())?;
        }
        Ok(tokens)
    }

    /// Writes tokenizer_config.json, special_tokens_map.json and
    /// generation_config.json into `dir` (the first two only with a tokenizer).
    pub(super) fn save_hf_files(&self, dir: &Path) -> Result<()> {
        let tokens = self.save_token_files(dir)?;
        if self.arch().is_encoder() {
            // An encoder classifier does not generate: no generation_config.json.
            return Ok(());
        }
        let id = |name: &str, fallback: Option<u32>| {
            let from_tok = self
                .tokenizer
                .as_ref()
                .and_then(|t| t.token_to_id(tokens.get(name)?.as_str()?));
            from_tok.or(fallback)
        };
        let mut gen = Map::new();
        gen.insert("_from_model_config".into(), json!(true));
        for (key, value) in [
            ("bos_token_id", id("bos_token", self.cfg.bos_token_id)),
            ("eos_token_id", id("eos_token", self.cfg.eos_token_id)),
            ("pad_token_id", id("pad_token", self.cfg.pad_token_id)),
        ] {
            if let Some(v) = value {
                gen.insert(key.into(), json!(v));
            }
        }
        // Several stop ids (Llama 3) are written as the list they were read as.
        let eos = gen.get("eos_token_id").and_then(Value::as_u64);
        if self.cfg.eos_token_ids.len() > 1 {
            let mut ids = self.cfg.eos_token_ids.clone();
            if let Some(e) = eos.filter(|&e| !ids.contains(&(e as u32))) {
                ids.insert(0, e as u32);
            }
            gen.insert("eos_token_id".into(), json!(ids));
        }
        gen.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
        let text = serde_json::to_string_pretty(&Value::Object(gen))?;
        write_atomic(&dir.join(GENERATION_CONFIG_FILE), (text + "\n").as_bytes())
    }
}
