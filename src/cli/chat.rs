//! `engine chat`: an interactive conversation with a model. Each turn is
//! rendered with the user/assistant prefixes and appended to the history;
//! the reply stops at EOS or the next user prefix and is shown without
//! special tokens. Lines starting with `/` are commands for the chat itself
//! (`/help`, `/reset`, `/system TEXT`, `/history`, `/exit`), never sent to
//! the model.

use anyhow::{anyhow, Result};
use std::io::{BufRead, Write};
use std::sync::Arc;

use super::models::{ModelArgs, SamplingArgs};
use engine::models::generate::generate;
use engine::models::CausalLm;
use engine::Gpu;

#[derive(clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text put before the conversation.
    #[arg(long, default_value = "")]
    pub system: String,
    #[arg(long, default_value = "User: ")]
    pub user_prefix: String,
    #[arg(long, default_value = "Assistant:")]
    pub assistant_prefix: String,
    #[arg(long, default_value = "\n")]
    pub separator: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// One JSON line per reply: {"user", "reply", "new_ids"} (the banner and
    /// command output go to stderr).
    #[arg(long)]
    pub json: bool,
}

const HELP: &str = "commands (never sent to the model):
  /help          this list
  /reset         forget the conversation (the system text stays)
  /system TEXT   set the system text put before the conversation
  /history       the conversation as the model sees it (the window that fits its context)
  /exit          leave (as does end of input)";

/// A line of the chat: a command or a user turn.
enum Input<'a> {
    Help,
    Reset,
    System(&'a str),
    History,
    Exit,
    Unknown(&'a str),
    Say(&'a str),
}

fn parse(line: &str) -> Input<'_> {
    let Some(cmd) = line.strip_prefix('/') else {
        return Input::Say(line);
    };
    let (name, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
    match name {
        "help" | "?" => Input::Help,
        "reset" | "clear" => Input::Reset,
        "system" => Input::System(rest.trim()),
        "history" => Input::History,
        "exit" | "quit" => Input::Exit,
        _ => Input::Unknown(line),
    }
}

/// The conversation: the system text and the (user, reply) turns so far.
struct Conversation<'a> {
    args: &'a ChatArgs,
    system: String,
    turns: Vec<(String, String)>,
}

impl Conversation<'_> {
    /// The prompt for the next reply after `user` (None: no pending user turn).
    fn render(&self, user: Option<&str>) -> String {
        let a = self.args;
        let mut text = self.system.clone();
        for (u, r) in &self.turns {
            text += &format!(
                "{}{u}{}{}{r}{}",
                a.user_prefix, a.separator, a.assistant_prefix, a.separator
            );
        }
        if let Some(u) = user {
            text += &format!("{}{u}{}{}", a.user_prefix, a.separator, a.assistant_prefix);
        }
        text
    }

    /// The token ids the model sees: the most recent tokens that leave room
    /// for the reply in the context; and how many were cut from the front.
    fn window(
        &self,
        model: &CausalLm,
        user: Option<&str>,
        room: usize,
    ) -> Result<(Vec<i32>, usize)> {
        let mut ids = model.encode(&self.render(user))?;
        let cut = ids.len().saturating_sub(room);
        ids.drain(..cut);
        Ok((ids, cut))
    }
}

/// Decodes without special tokens (EOS, padding), as a chat shows a reply.
fn decode_plain(model: &CausalLm, ids: &[u32]) -> Result<String> {
    let tok = model
        .tokenizer
        .as_ref()
        .ok_or_else(|| anyhow!("the model directory has no tokenizer.json"))?;
    tok.decode(ids, true).map_err(|e| anyhow!("decoding: {e}"))
}

pub fn chat_cmd(gpu: &Arc<Gpu>, a: &ChatArgs) -> Result<()> {
    let model = a.model.load(gpu)?;
    let mut cfg = a.sampling.config(&model)?;
    let next_user = format!("{}{}", a.separator, a.user_prefix.trim_end());
    cfg.stop_strings.push(next_user.clone());
    let room = model.cfg.n_ctx.saturating_sub(cfg.max_new_tokens);
    // Messages about the chat itself: stderr when stdout carries JSON.
    let say = |text: &str| {
        if a.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    let mut name = format!("{}", a.model.model.display());
    if let Some(adapter) = &a.model.adapter {
        name += &format!(" + adapter {}", adapter.display());
    }
    let kind = model.cfg.raw["model_type"].as_str().unwrap_or("model");
    say(&format!(
        "engine chat: {name} ({kind}, context {} tokens). /help for commands, /exit to leave.",
        model.cfg.n_ctx
    ));
    let mut chat = Conversation {
        args: a,
        system: a.system.clone(),
        turns: Vec::new(),
    };
    let stdin = std::io::stdin();
    loop {
        if !a.json {
            print!("> ");
            std::io::stdout().flush()?;
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let user = match parse(line) {
            Input::Say(u) => u,
            Input::Help => {
                say(HELP);
                continue;
            }
            Input::Reset => {
                chat.turns.clear();
                say("(conversation cleared)");
                continue;
            }
            Input::System(text) => {
                chat.system = match text.is_empty() {
                    true => String::new(),
                    false => format!("{text}{}", a.separator),
                };
                say(&format!(
                    "(system text {})",
                    if text.is_empty() { "cleared" } else { "set" }
                ));
                continue;
            }
            Input::History => {
                let (ids, cut) = chat.window(&model, None, room)?;
                // The text as rendered, or the tokens kept when some were cut.
                let text = match cut {
                    0 => chat.render(None),
                    _ => model.decode(&ids.iter().map(|&i| i as u32).collect::<Vec<_>>())?,
                };
                say(&format!(
                    "--- history: {} turns, {} tokens in the window{} ---\n{text}\n--- end of history ---",
                    chat.turns.len(),
                    ids.len(),
                    if cut > 0 { format!(", {cut} older tokens cut") } else { String::new() },
                ));
                continue;
            }
            Input::Exit => return Ok(()),
            Input::Unknown(l) => {
                say(&format!("unknown command {l}: /help lists them (start a message with // to send a slash)"));
                continue;
            }
        };
        // `//text` sends `/text`.
        let user = user
            .strip_prefix("//")
            .map_or(user.to_string(), |u| format!("/{u}"));
        let (ids, _) = chat.window(&model, Some(&user), room)?;
        let out = generate(&model, &[ids], &cfg)?;
        let mut reply = decode_plain(&model, &out.new_ids[0])?;
        if let Some(cut) = reply.find(&next_user) {
            reply.truncate(cut);
        }
        let reply = reply.trim().to_string();
        if a.json {
            let line = serde_json::json!({"user": user, "reply": reply, "new_ids": out.new_ids[0]});
            println!("{line}");
        } else {
            println!("{reply}");
        }
        chat.turns.push((user, reply));
    }
}
