//! The one prompt/chat template of a model, used by every stage (data
//! loading, SFT, reward scoring, PPO, eval) so a prompt is rendered the same
//! way in training and generation.
//!
//! Two kinds, as TRL and transformers see data:
//! - [`HfTemplate`] (the default): conversational data is rendered with the
//!   model's Jinja `chat_template` (tokenizer_config.json) exactly as
//!   `apply_chat_template` does; standard (string) data is concatenated
//!   as TRL does: `prompt + completion + eos`, no wrapper.
//! - [`EngineTemplate`]: engine's own presets (`gpt2`'s `User: …\nAssistant:`,
//!   `plain`, `hh`, `support`), only when asked for: `--template`, a run
//!   file's `template`, or a model directory's [`TEMPLATE_FILE`].
//!
//! Whichever a run used is written into its outputs' tokenizer_config.json
//! as `chat_template` ([`ChatTemplate::jinja_source`]).

use anyhow::{bail, Result};
use std::path::Path;

mod engine;
mod hf;

pub use engine::EngineTemplate;
pub use hf::{read_tokenizer_config, HfTemplate, TokenizerConfig};

use super::records::{Content, Message};

/// engine's template file in a model directory. A run config holds the same
/// JSON object under its `template` field.
pub const TEMPLATE_FILE: &str = "engine_template.json";

/// A piece of rendered text; `trainable` marks assistant content (with its
/// lead and EOS), which completion-only losses keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub trainable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// engine's own template, asked for by name, file or model directory.
    Engine(EngineTemplate),
    /// The model's Jinja chat template (if any) and TRL's plain concatenation.
    Hf(HfTemplate),
}

impl From<EngineTemplate> for ChatTemplate {
    fn from(t: EngineTemplate) -> Self {
        ChatTemplate::Engine(t)
    }
}

impl ChatTemplate {
    /// engine's `"System: …\nUser: …\nAssistant: …<|endoftext|>"`.
    pub fn gpt2() -> ChatTemplate {
        EngineTemplate::gpt2().into()
    }

    /// engine's plain preset: strings verbatim, no EOS; messages as gpt2.
    pub fn plain() -> ChatTemplate {
        EngineTemplate::plain().into()
    }

    /// Anthropic hh-rlhf's `"\n\nHuman: …\n\nAssistant: …"`.
    pub fn hh() -> ChatTemplate {
        EngineTemplate::hh().into()
    }

    /// The embedded support-tiny demo's `"Customer: …\nAgent: …"`.
    pub fn support() -> ChatTemplate {
        EngineTemplate::support().into()
    }

    /// An engine preset by name: `gpt2` (or `default`, `chat`), `plain`, `hh`, `support`.
    pub fn preset(name: &str) -> Result<ChatTemplate> {
        Ok(EngineTemplate::preset(name)?.into())
    }

    /// A preset name, or a path to an engine_template.json.
    pub fn preset_or_file(t: &str) -> Result<ChatTemplate> {
        if Path::new(t).is_file() || t.ends_with(".json") {
            ChatTemplate::load(Path::new(t))
        } else {
            ChatTemplate::preset(t)
        }
    }

    /// An engine_template.json.
    pub fn load(path: &Path) -> Result<ChatTemplate> {
        Ok(EngineTemplate::load(path)?.into())
    }

    /// Writes an engine template as engine_template.json JSON. A model's own
    /// Jinja template has no such file: it lives in tokenizer_config.json.
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            ChatTemplate::Engine(t) => t.save(path),
            ChatTemplate::Hf(_) => bail!(
                "{}: only engine's own templates are saved as {TEMPLATE_FILE}",
                path.display()
            ),
        }
    }

    /// The model directory's template: its [`TEMPLATE_FILE`] if present,
    /// else its tokenizer's chat template and special tokens (HF).
    pub fn for_model_dir(dir: &Path) -> Result<ChatTemplate> {
        let path = dir.join(TEMPLATE_FILE);
        if path.exists() {
            ChatTemplate::load(&path)
        } else {
            Ok(ChatTemplate::Hf(HfTemplate::for_model_dir(dir)?))
        }
    }

    /// `--template` (an engine preset name, an engine_template.json, or a
    /// `.jinja` file rendered with the model's special tokens), else the
    /// model directory's template. `model_dir` is only read when needed.
    pub fn resolve(template: Option<&str>, model_dir: Result<&Path>) -> Result<ChatTemplate> {
        match template {
            Some(t) if t.ends_with(".jinja") => {
                let source = std::fs::read_to_string(t)
                    .map_err(|e| anyhow::anyhow!("--template {t}: {e}"))?;
                let base = HfTemplate::for_model_dir(model_dir?)?;
                Ok(ChatTemplate::Hf(base.with_source(&source)?))
            }
            Some(t) => ChatTemplate::preset_or_file(t),
            None => ChatTemplate::for_model_dir(model_dir?),
        }
    }

    /// The Jinja `chat_template` to store in tokenizer_config.json: the
    /// model's own, or an engine template's equivalent.
    pub fn jinja_source(&self) -> Option<String> {
        match self {
            ChatTemplate::Engine(t) => Some(t.to_jinja()),
            ChatTemplate::Hf(t) => t.jinja().map(|j| j.source().to_string()),
        }
    }

    /// The tokenizer config's special token `name` (`bos_token`, ...) when
    /// this is the model's own (HF) template; engine's templates add none.
    pub fn hf_token(&self, name: &str) -> Option<&str> {
        match self {
            ChatTemplate::Engine(_) => None,
            ChatTemplate::Hf(t) => t.token(name),
        }
    }

    /// The text up to the generation point.
    pub fn render_prompt(&self, prompt: &Content) -> Result<String> {
        match self {
            ChatTemplate::Engine(t) => Ok(t.render_prompt(prompt)),
            ChatTemplate::Hf(t) => t.render_prompt(prompt),
        }
    }

    /// What follows a prompt: the answer (and any later turns). A Jinja
    /// template renders a conversational completion only after its prompt:
    /// use [`ChatTemplate::render_example`].
    pub fn render_completion(&self, completion: &Content) -> Result<String> {
        match self {
            ChatTemplate::Engine(t) => Ok(t.render_completion(completion)),
            ChatTemplate::Hf(t) => t
                .render_example(&Content::Chat(vec![]), completion)
                .map(|x| x.1),
        }
    }

    /// A language-modelling text (SFT's `{"text"}` rows) with the EOS text
    /// appended unless it already ends with it: TRL 0.19+'s SFTTrainer
    /// (`_prepare_dataset`'s `add_eos`, non-conversational data only), so a
    /// model trained on whole texts learns to stop. (TRL 0.11's non-packed
    /// SFTTrainer tokenized the text alone; engine follows the current rule,
    /// as it does for standard prompt/completion rows.) Engine templates
    /// append their own `eos` the same way.
    pub fn render_text(&self, text: &str) -> String {
        let eos = match self {
            ChatTemplate::Engine(t) => t.eos.as_deref(),
            ChatTemplate::Hf(t) => return t.with_eos(text),
        };
        match eos {
            Some(e) if !text.ends_with(e) => format!("{text}{e}"),
            _ => text.to_string(),
        }
    }

    /// (prompt text, completion text); their concatenation is the example.
    pub fn render_example(
        &self,
        prompt: &Content,
        completion: &Content,
    ) -> Result<(String, String)> {
        match self {
            ChatTemplate::Engine(t) => Ok(t.render_example(prompt, completion)),
            ChatTemplate::Hf(t) => t.render_example(prompt, completion),
        }
    }

    /// A whole conversation as text.
    pub fn render_messages(&self, messages: &[Message]) -> Result<String> {
        match self {
            ChatTemplate::Engine(t) => Ok(t.render_messages(messages)),
            ChatTemplate::Hf(t) => t.chat()?.render(messages, false),
        }
    }

    /// A conversation split where training starts and stops: adjacent
    /// pieces alternate between untrainable and trainable (assistant turns).
    pub fn render_conversation(&self, messages: &[Message]) -> Result<Vec<Segment>> {
        match self {
            ChatTemplate::Engine(t) => Ok(t.render_conversation(messages)),
            ChatTemplate::Hf(t) => t.render_conversation(messages),
        }
    }
}
