//! The record types of each dataset kind, how a row becomes one, and TRL's
//! prompt extraction for preference pairs that carry no explicit prompt.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

use super::dataset::{Dataset, LoadOptions};
use super::fields::{Fields, RowResult};
use super::source::load;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: &str) -> Message {
        Message {
            role,
            content: content.to_string(),
        }
    }
    pub fn system(content: &str) -> Message {
        Message::new(Role::System, content)
    }
    pub fn user(content: &str) -> Message {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: &str) -> Message {
        Message::new(Role::Assistant, content)
    }
}

/// A prompt or a completion: a string (TRL's "standard" data) or messages
/// ("conversational"). A conversational prompt ends before an assistant
/// turn; a conversational completion starts with one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Plain(String),
    Chat(Vec<Message>),
}

impl Content {
    /// No text and no message: an implicit prompt that was not there.
    pub fn is_empty(&self) -> bool {
        match self {
            Content::Plain(s) => s.is_empty(),
            Content::Chat(m) => m.is_empty(),
        }
    }

    pub fn is_blank(&self) -> bool {
        match self {
            Content::Plain(s) => s.trim().is_empty(),
            Content::Chat(m) => m.iter().all(|m| m.content.trim().is_empty()),
        }
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Content {
        Content::Plain(s.to_string())
    }
}

impl From<String> for Content {
    fn from(s: String) -> Content {
        Content::Plain(s)
    }
}

impl From<Vec<Message>> for Content {
    fn from(m: Vec<Message>) -> Content {
        Content::Chat(m)
    }
}

/// A supervised fine-tuning row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SftRecord {
    /// `{"text"}`: language modelling on the whole text.
    Text(String),
    /// `{"prompt","completion"}`.
    PromptCompletion {
        prompt: Content,
        completion: Content,
    },
    /// `{"messages"}`: a conversation; assistant turns are the completions.
    Messages(Vec<Message>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferenceRecord {
    pub prompt: Content,
    pub chosen: Content,
    pub rejected: Content,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtoRecord {
    pub prompt: Content,
    pub completion: Content,
    /// true = desirable.
    pub label: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptRecord {
    pub prompt: Content,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifierRecord {
    pub text: String,
    pub label: usize,
}

pub fn load_sft(path: &Path, opts: &LoadOptions) -> Result<Dataset<SftRecord>> {
    load(path, opts, |f| parse_sft(f).map(Some))
}

pub fn load_preferences(path: &Path, opts: &LoadOptions) -> Result<Dataset<PreferenceRecord>> {
    load(path, opts, |f| parse_preference(f).map(Some))
}

pub fn load_kto(path: &Path, opts: &LoadOptions) -> Result<Dataset<KtoRecord>> {
    load(path, opts, |f| {
        Ok(Some(KtoRecord {
            prompt: prompt(f, "prompt")?,
            completion: completion(f, "completion")?,
            label: f.label_bool("label")?,
        }))
    })
}

pub fn load_prompts(path: &Path, opts: &LoadOptions) -> Result<Dataset<PromptRecord>> {
    load(path, opts, |f| parse_prompt(f).map(Some))
}

/// Rows labelled -1 are skipped and counted in `report.skipped_unlabelled`.
pub fn load_classifier(path: &Path, opts: &LoadOptions) -> Result<Dataset<ClassifierRecord>> {
    load(path, opts, |f| {
        let Some(label) = f.label_class("label", f.opts.num_labels)? else {
            return Ok(None);
        };
        Ok(Some(ClassifierRecord {
            text: f.text("text")?,
            label,
        }))
    })
}

fn prompt(f: &Fields, field: &str) -> RowResult<Content> {
    let c = f.content(field)?;
    if let Content::Chat(m) = &c {
        if m.last().is_some_and(|m| m.role == Role::Assistant) {
            return Err(format!("{} ends with an assistant turn", f.name(field)));
        }
    }
    Ok(c)
}

fn completion(f: &Fields, field: &str) -> RowResult<Content> {
    let c = f.content(field)?;
    if let Content::Chat(m) = &c {
        if m[0].role != Role::Assistant {
            return Err(format!(
                "{} must start with an assistant turn",
                f.name(field)
            ));
        }
    }
    Ok(c)
}

fn parse_sft(f: &Fields) -> RowResult<SftRecord> {
    if f.has("messages") {
        let m = f.messages("messages")?;
        if !m
            .iter()
            .any(|m| m.role == Role::Assistant && !m.content.trim().is_empty())
        {
            return Err(format!("{} has no assistant turn", f.name("messages")));
        }
        Ok(SftRecord::Messages(m))
    } else if f.has("prompt") || f.has("completion") {
        Ok(SftRecord::PromptCompletion {
            prompt: prompt(f, "prompt")?,
            completion: completion(f, "completion")?,
        })
    } else if f.has("text") {
        Ok(SftRecord::Text(f.text("text")?))
    } else {
        Err(format!(
            "no {}, {}/{} or {} field",
            f.name("text"),
            f.name("prompt"),
            f.name("completion"),
            f.name("messages")
        ))
    }
}

fn parse_prompt(f: &Fields) -> RowResult<PromptRecord> {
    if !f.has("messages") {
        return Ok(PromptRecord {
            prompt: prompt(f, "prompt")?,
        });
    }
    let mut m = f.messages("messages")?;
    if m.last().is_some_and(|m| m.role == Role::Assistant) {
        m.pop();
    }
    if m.is_empty() {
        return Err(format!(
            "{} has no turn before the final assistant turn",
            f.name("messages")
        ));
    }
    Ok(PromptRecord {
        prompt: Content::Chat(m),
    })
}

fn parse_preference(f: &Fields) -> RowResult<PreferenceRecord> {
    if f.has("prompt") {
        return Ok(PreferenceRecord {
            prompt: prompt(f, "prompt")?,
            chosen: completion(f, "chosen")?,
            rejected: completion(f, "rejected")?,
        });
    }
    let (c, r) = (f.get("chosen")?, f.get("rejected")?);
    match (c, r) {
        (Value::String(c), Value::String(r)) => {
            let (p, c, r) = extract_prompt(c, r)?;
            if !f.opts.hh_as_messages || p.is_empty() {
                return Ok(PreferenceRecord {
                    prompt: p.into(),
                    chosen: c.into(),
                    rejected: r.into(),
                });
            }
            hh_record(&p, &c, &r).ok_or_else(|| "not an hh-rlhf dialogue".to_string())
        }
        (Value::Array(_), Value::Array(_)) => {
            split_messages(f.messages("chosen")?, f.messages("rejected")?)
        }
        _ => Err(format!(
            "{} and {} must both be strings or both message lists",
            f.name("chosen"),
            f.name("rejected")
        )),
    }
}

const HH_HUMAN: &str = "\n\nHuman:";
const HH_ASSISTANT: &str = "\n\nAssistant:";

/// TRL's `extract_prompt` for string pairs: the prompt is the longest common
/// prefix, cut just after its last `"\n\nAssistant:"` (hh-rlhf), or, with no
/// such marker, TRL's character rule (a trailing space goes to the
/// responses). Returns (prompt, chosen response, rejected response); with
/// no shared prefix the prompt is empty and the responses are the whole
/// texts (TRL's RewardTrainer trains on such pairs; DPO refuses them when
/// encoding).
pub fn extract_prompt(chosen: &str, rejected: &str) -> RowResult<(String, String, String)> {
    if chosen == rejected {
        return Err("chosen and rejected are identical".into());
    }
    let mut common = chosen
        .bytes()
        .zip(rejected.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !chosen.is_char_boundary(common) {
        common -= 1;
    }
    let shared = &chosen[..common];
    let cut = match shared.rfind(HH_ASSISTANT) {
        Some(i) => i + HH_ASSISTANT.len(),
        None if shared.ends_with(' ') => common - 1,
        None => common,
    };
    let (c, r) = (&chosen[cut..], &rejected[cut..]);
    for (what, text) in [("chosen", c), ("rejected", r)] {
        if text.trim().is_empty() {
            return Err(format!("empty {what} response after the shared prompt"));
        }
    }
    Ok((chosen[..cut].to_string(), c.to_string(), r.to_string()))
}

/// Splits `"\n\nHuman: …\n\nAssistant: …"` text into turns (one space after
/// each marker is dropped). None unless it starts with a marker.
pub fn parse_hh_dialogue(text: &str) -> Option<Vec<Message>> {
    // (start, marker length, role) of the next marker in `s`.
    let next_marker = |s: &str| {
        [(HH_HUMAN, Role::User), (HH_ASSISTANT, Role::Assistant)]
            .iter()
            .filter_map(|&(m, r)| s.find(m).map(|i| (i, m.len(), r)))
            .min_by_key(|x| x.0)
    };
    let (start, len, mut role) = next_marker(text)?;
    if start != 0 {
        return None;
    }
    let mut rest = &text[len..];
    let mut turns = Vec::new();
    loop {
        let next = next_marker(rest);
        let body = &rest[..next.map_or(rest.len(), |x| x.0)];
        turns.push(Message::new(role, body.strip_prefix(' ').unwrap_or(body)));
        let Some((i, len, r)) = next else {
            return Some(turns);
        };
        rest = &rest[i + len..];
        role = r;
    }
}

/// An hh-rlhf pair as messages: prompt turns up to the generation point,
/// responses as assistant turns (and any turns after them).
fn hh_record(prompt: &str, chosen: &str, rejected: &str) -> Option<PreferenceRecord> {
    let mut p = parse_hh_dialogue(prompt)?;
    // The prompt ends at "\n\nAssistant:": an empty final assistant turn.
    if p.pop()?.role != Role::Assistant || p.is_empty() {
        return None;
    }
    let response = |text: &str| parse_hh_dialogue(&format!("{HH_ASSISTANT}{text}"));
    Some(PreferenceRecord {
        prompt: Content::Chat(p),
        chosen: Content::Chat(response(chosen)?),
        rejected: Content::Chat(response(rejected)?),
    })
}

/// Implicit prompt for message lists: the common turns up to the last point
/// where both lists continue with an assistant turn. With no such point the
/// prompt is empty and each side is its whole conversation: TRL's
/// RewardTrainer renders such pairs whole through the chat template
/// (`maybe_apply_chat_template` without a prompt); DPO refuses them when
/// encoding ([`crate::data::Encoder::preference`]).
fn split_messages(chosen: Vec<Message>, rejected: Vec<Message>) -> RowResult<PreferenceRecord> {
    if chosen == rejected {
        return Err("chosen and rejected are identical".into());
    }
    let common = chosen
        .iter()
        .zip(&rejected)
        .take_while(|(a, b)| a == b)
        .count();
    let is_assistant =
        |m: &[Message], i: usize| m.get(i).is_some_and(|m| m.role == Role::Assistant);
    let split = (1..=common)
        .rev()
        .find(|&s| is_assistant(&chosen, s) && is_assistant(&rejected, s))
        .unwrap_or(0);
    let (c, r) = (chosen[split..].to_vec(), rejected[split..].to_vec());
    let rec = PreferenceRecord {
        prompt: Content::Chat(chosen[..split].to_vec()),
        chosen: Content::Chat(c),
        rejected: Content::Chat(r),
    };
    for (what, c) in [("chosen", &rec.chosen), ("rejected", &rec.rejected)] {
        if c.is_blank() {
            return Err(format!("empty {what} response after the shared prompt"));
        }
    }
    Ok(rec)
}
