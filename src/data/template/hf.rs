//! A model's own template, as TRL renders data for it: conversational
//! data through the tokenizer's Jinja `chat_template`, standard (string)
//! data concatenated as it is with the tokenizer's EOS after a completion.
//!
//! TRL's rules, followed here: a conversational prompt is
//! `apply_chat_template(prompt, add_generation_prompt=True)`; its completion
//! is `apply_chat_template(prompt + completion)` minus that prompt text (so
//! the template must render the prompt as a prefix of the whole). A string
//! completion gets `eos_token` appended unless it already ends with it
//! (SFT's `add_eos`, DPO/KTO's appended `eos_token_id`).

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

use super::Segment;
use crate::data::jinja::JinjaTemplate;
use crate::data::records::{Content, Message, Role};

/// The special-token names transformers passes to a chat template.
const SPECIAL_TOKENS: [&str; 4] = ["bos_token", "eos_token", "pad_token", "unk_token"];

/// What engine reads from a model directory's tokenizer files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenizerConfig {
    /// The Jinja chat template (chat_template.jinja, else tokenizer_config.json's
    /// `chat_template`, its `default` entry when it is a list).
    pub chat_template: Option<String>,
    /// `bos_token`, `eos_token`, ... as text.
    pub tokens: BTreeMap<String, String>,
    /// tokenizer_config.json as it is (empty object when absent).
    pub raw: serde_json::Map<String, Value>,
}

/// A special token's text: a string, or an AddedToken object's `content`.
fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Reads `dir`'s tokenizer_config.json (and chat_template.jinja). Where it
/// names no BOS/EOS/UNK, a tokenizer.json with GPT-2's `<|endoftext|>` gets
/// it as those, as transformers' GPT-2 and GPT-NeoX tokenizers do.
pub fn read_tokenizer_config(dir: &Path) -> Result<TokenizerConfig> {
    let mut out = TokenizerConfig::default();
    let path = dir.join("tokenizer_config.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let Value::Object(raw) = v else {
            bail!("{}: expected a JSON object", path.display());
        };
        for name in SPECIAL_TOKENS {
            if let Some(t) = raw.get(name).and_then(token_text) {
                out.tokens.insert(name.to_string(), t);
            }
        }
        out.chat_template = match raw.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            Some(_) => bail!(
                "{}: chat_template must be a string or a list",
                path.display()
            ),
        };
        out.raw = raw;
    }
    // GPT-2's hub tokenizer_config.json is only {"model_max_length": 1024}:
    // transformers' GPT2/GPT-NeoX tokenizer classes default BOS, EOS and UNK
    // to <|endoftext|>, so a config that names none gets it here too.
    if std::fs::read_to_string(dir.join("tokenizer.json"))
        .is_ok_and(|t| t.contains("\"<|endoftext|>\""))
    {
        for name in ["bos_token", "eos_token", "unk_token"] {
            out.tokens
                .entry(name.into())
                .or_insert_with(|| "<|endoftext|>".into());
        }
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        out.chat_template = Some(
            std::fs::read_to_string(&jinja)
                .with_context(|| format!("reading {}", jinja.display()))?,
        );
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HfTemplate {
    jinja: Option<JinjaTemplate>,
    /// Appended to string completions (TRL's `eos_token`); none when the
    /// tokenizer names no EOS.
    pub eos: Option<String>,
    tokens: BTreeMap<String, String>,
}

impl HfTemplate {
    /// A Jinja template (or none: string data only) with special tokens.
    pub fn new(source: Option<&str>, tokens: BTreeMap<String, String>) -> Result<HfTemplate> {
        let jinja = source
            .map(|s| JinjaTemplate::new(s, tokens.clone()))
            .transpose()?;
        Ok(HfTemplate {
            jinja,
            eos: tokens.get("eos_token").cloned(),
            tokens,
        })
    }

    /// The template of `dir`'s tokenizer files.
    pub fn for_model_dir(dir: &Path) -> Result<HfTemplate> {
        let cfg = read_tokenizer_config(dir)?;
        HfTemplate::new(cfg.chat_template.as_deref(), cfg.tokens)
            .with_context(|| format!("{}: chat_template", dir.display()))
    }

    /// The same special tokens with another Jinja template.
    pub fn with_source(&self, source: &str) -> Result<HfTemplate> {
        HfTemplate::new(Some(source), self.tokens.clone())
    }

    /// A special token's text (`bos_token`, `eos_token`, ...) as the
    /// tokenizer config names it.
    pub fn token(&self, name: &str) -> Option<&str> {
        self.tokens.get(name).map(String::as_str)
    }

    pub fn jinja(&self) -> Option<&JinjaTemplate> {
        self.jinja.as_ref()
    }

    /// The chat template, or an error saying conversational data needs one.
    pub fn chat(&self) -> Result<&JinjaTemplate> {
        self.jinja.as_ref().ok_or_else(|| {
            anyhow!(
                "conversational data needs a chat template: the model's tokenizer_config.json \
                 has no chat_template; pass --template (gpt2, hh, a .jinja file, ...)"
            )
        })
    }

    pub(super) fn with_eos(&self, text: &str) -> String {
        match &self.eos {
            Some(eos) if !text.ends_with(eos.as_str()) => format!("{text}{eos}"),
            _ => text.to_string(),
        }
    }

    pub fn render_prompt(&self, prompt: &Content) -> Result<String> {
        match prompt {
            Content::Plain(p) => Ok(p.clone()),
            Content::Chat(m) => self.chat()?.render(m, true),
        }
    }

    pub fn render_example(
        &self,
        prompt: &Content,
        completion: &Content,
    ) -> Result<(String, String)> {
        match (prompt, completion) {
            (Content::Plain(p), Content::Plain(c)) => Ok((p.clone(), self.with_eos(c))),
            (Content::Chat(p), Content::Chat(c)) => {
                let chat = self.chat()?;
                let head = chat.render(p, true)?;
                let whole = chat.render(&[p.as_slice(), c.as_slice()].concat(), false)?;
                Ok((head.clone(), rest_after(&head, &whole)?.to_string()))
            }
            _ => bail!("a prompt and its completion must both be strings or both be message lists"),
        }
    }

    /// Assistant turns are trainable: the text each adds to the
    /// conversation rendered up to it, after the prompt rendered with
    /// `add_generation_prompt` (what TRL's prompt/completion split trains).
    pub fn render_conversation(&self, messages: &[Message]) -> Result<Vec<Segment>> {
        let chat = self.chat()?;
        let mut segments: Vec<Segment> = Vec::new();
        let mut done = String::new();
        let push = |text: &str, trainable: bool, segments: &mut Vec<Segment>| {
            if text.is_empty() {
                return;
            }
            match segments.last_mut() {
                Some(last) if last.trainable == trainable => last.text += text,
                _ => segments.push(Segment {
                    text: text.to_string(),
                    trainable,
                }),
            }
        };
        for (i, m) in messages.iter().enumerate() {
            if m.role != Role::Assistant {
                continue;
            }
            let head = chat.render(&messages[..i], true)?;
            let upto = chat.render(&messages[..=i], false)?;
            push(rest_after(&done, &head)?, false, &mut segments);
            push(rest_after(&head, &upto)?, true, &mut segments);
            done = upto;
        }
        let whole = chat.render(messages, false)?;
        push(rest_after(&done, &whole)?, false, &mut segments);
        Ok(segments)
    }
}

/// `whole` after its prefix `head`; a template that renders a conversation's
/// start differently once more turns follow cannot be split this way.
fn rest_after<'a>(head: &str, whole: &'a str) -> Result<&'a str> {
    ensure!(
        whole.starts_with(head),
        "the chat template renders the prompt {head:?} differently once the completion follows \
         ({whole:?}); its prompt/completion split is undefined"
    );
    Ok(&whole[head.len()..])
}
