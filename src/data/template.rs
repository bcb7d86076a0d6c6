//! The one prompt/chat template of a model, used by every stage (data
//! loading, SFT, reward scoring, PPO, eval) so a prompt is rendered the same
//! way in training and generation.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::records::{Content, Message, Role};

/// The template's file in a model directory. A run config holds the same
/// JSON object under its `template` field.
pub const TEMPLATE_FILE: &str = "engine_template.json";

/// How turns become text. A conversation renders each turn as its role's
/// prefix then the content, turns joined by `turn_separator`; an assistant
/// turn is `assistant_prefix + assistant_lead + content + eos`. A prompt
/// ends with `assistant_prefix` (the generation point), so a completion
/// starts with `assistant_lead`. In JSON every field is optional (missing
/// ones take the [`ChatTemplate::gpt2`] values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatTemplate {
    pub system_prefix: String,
    pub user_prefix: String,
    pub assistant_prefix: String,
    /// Between `assistant_prefix` and an assistant turn's content (a space
    /// for BPE vocabularies, whose words carry their leading space).
    pub assistant_lead: String,
    pub turn_separator: String,
    /// Appended after every assistant turn and completion (e.g. `<|endoftext|>`,
    /// which GPT-2 and GPT-NeoX tokenizers map to their EOS id).
    pub eos: Option<String>,
    /// A string prompt is one user turn and a string completion that
    /// turn's answer, its leading whitespace replaced by `assistant_lead`
    /// (true); or both are used verbatim, concatenated (false, TRL's
    /// behaviour for standard data).
    pub wrap_plain: bool,
}

/// A piece of rendered text; `trainable` marks assistant content (with its
/// lead and EOS), which completion-only losses keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub trainable: bool,
}

impl Default for ChatTemplate {
    fn default() -> Self {
        ChatTemplate::gpt2()
    }
}

impl ChatTemplate {
    /// `"System: …\nUser: …\nAssistant: …<|endoftext|>"`, for GPT-2-style
    /// base models (also GPT-NeoX: same EOS text). The default.
    pub fn gpt2() -> ChatTemplate {
        ChatTemplate {
            system_prefix: "System: ".into(),
            user_prefix: "User: ".into(),
            assistant_prefix: "Assistant:".into(),
            assistant_lead: " ".into(),
            turn_separator: "\n".into(),
            eos: Some("<|endoftext|>".into()),
            wrap_plain: true,
        }
    }

    /// TRL's default for standard data: prompt + completion as they are, no
    /// EOS. Messages still render with the gpt2 prefixes.
    pub fn plain() -> ChatTemplate {
        ChatTemplate {
            eos: None,
            wrap_plain: false,
            ..ChatTemplate::gpt2()
        }
    }

    /// Anthropic hh-rlhf's `"\n\nHuman: …\n\nAssistant: …"`; string data is
    /// used verbatim (it already has the markers), and messages parsed from
    /// hh text render back to the same text.
    pub fn hh() -> ChatTemplate {
        ChatTemplate {
            system_prefix: "\n\nSystem: ".into(),
            user_prefix: "\n\nHuman: ".into(),
            assistant_prefix: "\n\nAssistant:".into(),
            assistant_lead: " ".into(),
            turn_separator: String::new(),
            eos: None,
            wrap_plain: false,
        }
    }

    /// A customer-support transcript, `"Customer: …\nAgent: …<|endoftext|>"`
    /// (the embedded support-tiny default's).
    pub fn support() -> ChatTemplate {
        ChatTemplate {
            user_prefix: "Customer: ".into(),
            assistant_prefix: "Agent:".into(),
            ..ChatTemplate::gpt2()
        }
    }

    /// By name: `gpt2` (or `default`, `chat`), `plain`, `hh`, `support`.
    pub fn preset(name: &str) -> Result<ChatTemplate> {
        Ok(match name {
            "gpt2" | "default" | "chat" => ChatTemplate::gpt2(),
            "plain" => ChatTemplate::plain(),
            "hh" => ChatTemplate::hh(),
            "support" => ChatTemplate::support(),
            _ => bail!("unknown template {name:?}: expected gpt2, plain, hh or support"),
        })
    }

    /// A preset name, or a path to an engine_template.json.
    pub fn preset_or_file(t: &str) -> Result<ChatTemplate> {
        if Path::new(t).is_file() || t.ends_with(".json") {
            ChatTemplate::load(Path::new(t))
        } else {
            ChatTemplate::preset(t)
        }
    }

    pub fn load(path: &Path) -> Result<ChatTemplate> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        crate::models::checkpoint::write_atomic(path, (json + "\n").as_bytes())
    }

    /// The model directory's [`TEMPLATE_FILE`], or the default when absent.
    pub fn for_model_dir(dir: &Path) -> Result<ChatTemplate> {
        let path = dir.join(TEMPLATE_FILE);
        if path.exists() {
            ChatTemplate::load(&path)
        } else {
            Ok(ChatTemplate::default())
        }
    }

    fn eos(&self) -> &str {
        self.eos.as_deref().unwrap_or("")
    }

    /// An assistant turn's trained part: lead, content, EOS.
    fn answer(&self, content: &str) -> String {
        format!("{}{content}{}", self.assistant_lead, self.eos())
    }

    fn prefix(&self, role: Role) -> &str {
        match role {
            Role::System => &self.system_prefix,
            Role::User => &self.user_prefix,
            Role::Assistant => &self.assistant_prefix,
        }
    }

    /// The text up to the generation point (ending with `assistant_prefix`,
    /// unless a string prompt is used verbatim).
    pub fn render_prompt(&self, prompt: &Content) -> String {
        match prompt {
            Content::Plain(p) if !self.wrap_plain => p.clone(),
            Content::Plain(p) => format!(
                "{}{p}{}{}",
                self.user_prefix, self.turn_separator, self.assistant_prefix
            ),
            Content::Chat(m) if m.is_empty() => self.assistant_prefix.clone(),
            Content::Chat(m) => format!(
                "{}{}{}",
                self.render_messages(m),
                self.turn_separator,
                self.assistant_prefix
            ),
        }
    }

    /// What follows the prompt: the answer (and any later turns).
    pub fn render_completion(&self, completion: &Content) -> String {
        match completion {
            // The answer's content: the lead stands in for leading spaces.
            Content::Plain(c) if self.wrap_plain => self.answer(c.trim_start()),
            Content::Plain(c) => format!("{c}{}", self.eos()),
            Content::Chat(m) => {
                let mut out = String::new();
                for (i, msg) in m.iter().enumerate() {
                    if i == 0 && msg.role == Role::Assistant {
                        out += &self.answer(&msg.content);
                        continue;
                    }
                    if i > 0 {
                        out += &self.turn_separator;
                    }
                    out += &self.render_messages(std::slice::from_ref(msg));
                }
                out
            }
        }
    }

    /// (prompt text, completion text); their concatenation is the example.
    pub fn render_example(&self, prompt: &Content, completion: &Content) -> (String, String) {
        (
            self.render_prompt(prompt),
            self.render_completion(completion),
        )
    }

    /// A whole conversation as text.
    pub fn render_messages(&self, messages: &[Message]) -> String {
        self.render_conversation(messages)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    /// A conversation split where training starts and stops: adjacent
    /// pieces alternate between untrainable (prefixes, separators, non-
    /// assistant turns) and trainable (assistant answers).
    pub fn render_conversation(&self, messages: &[Message]) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        let mut push = |text: String, trainable: bool| {
            if text.is_empty() {
                return;
            }
            match out.last_mut() {
                Some(last) if last.trainable == trainable => last.text += &text,
                _ => out.push(Segment { text, trainable }),
            }
        };
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                push(self.turn_separator.clone(), false);
            }
            push(self.prefix(m.role).to_string(), false);
            match m.role {
                Role::Assistant => push(self.answer(&m.content), true),
                _ => push(m.content.clone(), false),
            }
        }
        out
    }
}
