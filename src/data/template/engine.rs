//! engine's own prompt templates (`User: …\nAssistant: …`, hh, support),
//! used only when asked for: `--template`, a run file's `template`, or a
//! model directory's `engine_template.json`. Each has a Jinja equivalent
//! ([`EngineTemplate::to_jinja`]) written into the outputs'
//! tokenizer_config.json so transformers renders conversations the same way.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::data::records::{Content, Message, Role};
use crate::data::template::Segment;

/// How turns become text. A conversation renders each turn as its role's
/// prefix then the content, turns joined by `turn_separator`; an assistant
/// turn is `assistant_prefix + assistant_lead + content + eos`. A prompt
/// ends with `assistant_prefix` (the generation point), so a completion
/// starts with `assistant_lead`. In JSON every field is optional (missing
/// ones take the [`EngineTemplate::gpt2`] values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineTemplate {
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

impl Default for EngineTemplate {
    fn default() -> Self {
        EngineTemplate::gpt2()
    }
}

impl EngineTemplate {
    /// `"System: …\nUser: …\nAssistant: …<|endoftext|>"`, for GPT-2-style
    /// base models (also GPT-NeoX: same EOS text). The default.
    pub fn gpt2() -> EngineTemplate {
        EngineTemplate {
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
    pub fn plain() -> EngineTemplate {
        EngineTemplate {
            eos: None,
            wrap_plain: false,
            ..EngineTemplate::gpt2()
        }
    }

    /// Anthropic hh-rlhf's `"\n\nHuman: …\n\nAssistant: …"`; string data is
    /// used verbatim (it already has the markers), and messages parsed from
    /// hh text render back to the same text.
    pub fn hh() -> EngineTemplate {
        EngineTemplate {
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
    pub fn support() -> EngineTemplate {
        EngineTemplate {
            user_prefix: "Customer: ".into(),
            assistant_prefix: "Agent:".into(),
            ..EngineTemplate::gpt2()
        }
    }

    /// By name: `gpt2` (or `default`, `chat`), `plain`, `hh`, `support`.
    pub fn preset(name: &str) -> Result<EngineTemplate> {
        Ok(match name {
            "gpt2" | "default" | "chat" => EngineTemplate::gpt2(),
            "plain" => EngineTemplate::plain(),
            "hh" => EngineTemplate::hh(),
            "support" => EngineTemplate::support(),
            _ => bail!("unknown template {name:?}: expected gpt2, plain, hh or support"),
        })
    }

    pub fn load(path: &Path) -> Result<EngineTemplate> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        crate::models::checkpoint::write_atomic(path, (json + "\n").as_bytes())
    }

    /// The Jinja chat template that renders conversations as
    /// [`EngineTemplate::render_messages`] does, and with
    /// `add_generation_prompt` as [`EngineTemplate::render_prompt`] does;
    /// written into tokenizer_config.json for transformers.
    pub fn to_jinja(&self) -> String {
        let lit = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let answer_end = lit(self.eos());
        let sep = lit(&self.turn_separator);
        format!(
            "{{% for message in messages %}}{{% if not loop.first %}}{{{{ {sep} }}}}{{% endif %}}\
             {{% if message['role'] == 'system' %}}{{{{ {sys} + message['content'] }}}}\
             {{% elif message['role'] == 'user' %}}{{{{ {user} + message['content'] }}}}\
             {{% elif message['role'] == 'assistant' %}}{{{{ {asst} + message['content'] + {answer_end} }}}}\
             {{% else %}}{{{{ raise_exception('unknown role: ' + message['role']) }}}}{{% endif %}}\
             {{% endfor %}}{{% if add_generation_prompt %}}{{% if messages %}}{{{{ {sep} }}}}{{% endif %}}\
             {{{{ {prompt_end} }}}}{{% endif %}}",
            sys = lit(&self.system_prefix),
            user = lit(&self.user_prefix),
            asst = lit(&format!("{}{}", self.assistant_prefix, self.assistant_lead)),
            prompt_end = lit(&self.assistant_prefix),
        )
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
