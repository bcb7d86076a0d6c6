//! The one Jinja chat-template renderer: a `chat_template` from a
//! tokenizer_config.json rendered exactly as transformers'
//! `tokenizer.apply_chat_template(messages, tokenize=False, ...)` does.
//!
//! transformers compiles templates in an `ImmutableSandboxedEnvironment`
//! with `trim_blocks=True, lstrip_blocks=True` and the `loopcontrols`
//! extension, and renders them with `messages`, `add_generation_prompt`,
//! the tokenizer's special tokens (`bos_token`, `eos_token`, ...) and the
//! globals `raise_exception` and `strftime_now`. Templates call Python
//! string and dict methods (`.strip()`, `.title()`, `.items()`), which
//! minijinja-contrib's pycompat callback provides, and `tojson`, which
//! transformers replaces by `json.dumps(x, ensure_ascii=False)` (Python's
//! `", "`/`": "` separators, no HTML escaping): [`python_json`] does the same.

use anyhow::{anyhow, Result};
use minijinja::{Environment, Error, ErrorKind, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::records::Message;

const NAME: &str = "chat_template";

/// A compiled chat template and the special tokens it is rendered with.
#[derive(Clone)]
pub struct JinjaTemplate {
    source: String,
    /// `bos_token`, `eos_token`, `pad_token`, `unk_token`: the tokenizer's
    /// special-token strings, passed to every render as transformers does.
    tokens: BTreeMap<String, String>,
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for JinjaTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JinjaTemplate")
            .field("source", &self.source)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl PartialEq for JinjaTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.tokens == other.tokens
    }
}
impl Eq for JinjaTemplate {}

impl JinjaTemplate {
    /// Compiles `source`; `tokens` maps names such as `eos_token` to their text.
    pub fn new(source: &str, tokens: BTreeMap<String, String>) -> Result<JinjaTemplate> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| anyhow!("chat template: {e}"))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |format: String| {
            strftime_utc(&format, unix_now())
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| anyhow!("chat template does not compile: {e:#}"))?;
        Ok(JinjaTemplate {
            source: source.to_string(),
            tokens,
            env: Arc::new(env),
        })
    }

    /// The template's Jinja text (what tokenizer_config.json stores).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A special token's text (`"eos_token"`), if the tokenizer has one.
    pub fn token(&self, name: &str) -> Option<&str> {
        self.tokens.get(name).map(String::as_str)
    }

    /// `apply_chat_template(messages, add_generation_prompt=...,
    /// tokenize=False)`; a `raise_exception` from the template is the error.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &BTreeMap::new())
    }

    /// [`Self::render`] with extra template variables (transformers passes
    /// `apply_chat_template`'s extra keyword arguments the same way).
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &BTreeMap<String, serde_json::Value>,
    ) -> Result<String> {
        let mut ctx: BTreeMap<String, Value> = self
            .tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        for (k, v) in extra {
            ctx.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        ctx.insert(
            "messages".into(),
            Value::from(minijinja::value::Serde(messages)),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        let tmpl = self.env.get_template(NAME)?;
        tmpl.render(Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidOperation => {
                    anyhow!("the chat template raised: {}", e.detail().unwrap_or(""))
                }
                _ => anyhow!("rendering the chat template: {e:#}"),
            })
    }
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent)`.
fn tojson(value: Value, indent: Option<usize>) -> Result<Value, Error> {
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(Value::from_safe_string(python_json(&json, indent)))
}

/// JSON text as Python's `json.dumps(..., ensure_ascii=False)` writes it:
/// `", "` and `": "` separators, or one item per line with `indent`.
pub fn python_json(v: &serde_json::Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write_python_json(v, indent, 0, &mut out);
    out
}

fn write_python_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                write_python_json(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(m) if !m.is_empty() => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_python_json(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Python's `datetime.now().strftime(format)` (UTC) for the directives chat
/// templates use (`%d %m %y %Y %b %B %a %A %H %I %M %S %p %j %%`); others fail.
pub fn strftime_utc(format: &str, unix: i64) -> Result<String, Error> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('d') => format!("{d:02}"),
            Some('m') => format!("{m:02}"),
            Some('y') => format!("{:02}", y.rem_euclid(100)),
            Some('Y') => y.to_string(),
            Some('b') => MONTHS[m as usize - 1][..3].to_string(),
            Some('B') => MONTHS[m as usize - 1].to_string(),
            Some('a') => DAYS[weekday][..3].to_string(),
            Some('A') => DAYS[weekday].to_string(),
            Some('H') => format!("{hh:02}"),
            Some('I') => format!("{:02}", (hh + 11) % 12 + 1),
            Some('M') => format!("{mm:02}"),
            Some('S') => format!("{ss:02}"),
            Some('p') => (if hh < 12 { "AM" } else { "PM" }).to_string(),
            Some('j') => format!("{yday:03}"),
            Some('%') => "%".to_string(),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported directive %{}",
                        other.unwrap_or(' ')
                    ),
                ))
            }
        };
        out += &piece;
    }
    Ok(out)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm; also names run directories).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
