//! Customer messages: a greeting, the request (an intent's action in a
//! frame, or one of its whole questions), a sign-off, then the noise real
//! chat logs have (lower case, no punctuation, a typo).
//!
//! Held-out phrasings: each (intent, request source) pair is a "phrasing";
//! about one in six is reserved for the eval split, so eval prompts are new
//! combinations of words, not only new strings.

use super::alt::{choose, pick, words};
use super::intents::{Intent, INTENTS};
use crate::rng::Rng;

/// Frames around an action; `{a}` is the action.
const FRAMES: &[&str] = &[
    "I [want|need] to {a}",
    "I'd like to {a}",
    "how [do|can] I {a}?",
    "can you help me {a}?",
    "could you [help me|tell me how to] {a}?",
    "help me {a}",
    "I [tried|am trying] to {a} [but it doesn't work|and I'm stuck]",
    "is it possible to {a}?",
    "what do I [have|need] to do to {a}?",
    "where can I {a}?",
    "I don't know how to {a}",
    "[please|pls] help me {a}",
    "I need [help|assistance] to {a}",
    "what's the [way|process] to {a}?",
];

const GREETINGS: &[&str] = &[
    "",
    "",
    "",
    "hi, ",
    "hello, ",
    "hey, ",
    "good morning, ",
    "hi there, ",
    "hello team, ",
    "hey support, ",
];

const SIGN_OFFS: &[&str] = &[
    "",
    "",
    "",
    " thanks",
    " thank you",
    " please",
    " thx",
    " asap",
    " thanks in advance",
    " it's urgent",
    " appreciate it",
];

/// Common misspellings (word → typo), applied to one word at most.
const TYPOS: &[(&str, &str)] = &[
    ("please", "pls"),
    ("order", "ordr"),
    ("account", "acount"),
    ("want", "wnat"),
    ("help", "hlep"),
    ("you", "u"),
    ("refund", "refnud"),
    ("address", "adress"),
    ("invoice", "invioce"),
    ("password", "pasword"),
    ("delivery", "delivry"),
    ("payment", "paymnet"),
    ("cancel", "cancle"),
    ("can", "cna"),
];

/// Where a message's request comes from: frame `f` around action `a`, or
/// whole question `q`. Eval owns about one in six of these per intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phrasing {
    Framed { action: usize, frame: usize },
    Question(usize),
}

/// Every phrasing of an intent, in a fixed order.
pub fn phrasings(intent: &Intent) -> Vec<Phrasing> {
    let framed = (0..intent.actions.len())
        .flat_map(|action| (0..FRAMES.len()).map(move |frame| Phrasing::Framed { action, frame }));
    framed
        .chain((0..intent.questions.len()).map(Phrasing::Question))
        .collect()
}

/// Whether a phrasing is reserved for eval: a fixed hash, independent of the
/// seed, so held-out phrasings never drift into training with a new seed.
pub fn held_out(intent_index: usize, p: Phrasing) -> bool {
    let (kind, a, b) = match p {
        Phrasing::Framed { action, frame } => (1u64, action as u64, frame as u64),
        Phrasing::Question(q) => (2, q as u64, 0),
    };
    let key = (intent_index as u64) << 32 | kind << 24 | a << 12 | b;
    Rng::new(key).next_u64().is_multiple_of(6)
}

/// A random customer message for `intent` from the training (or, with
/// `eval`, the held-out) phrasings; at most `max_words` words.
pub fn message(intent_index: usize, eval: bool, max_words: usize, rng: &mut Rng) -> String {
    let intent = &INTENTS[intent_index];
    let pool: Vec<Phrasing> = phrasings(intent)
        .into_iter()
        .filter(|&p| held_out(intent_index, p) == eval)
        .collect();
    assert!(!pool.is_empty(), "intent {} has no phrasings", intent.name);
    loop {
        let request = match choose(&pool, rng) {
            Phrasing::Framed { action, frame } => {
                let a = pick(intent.actions[action], rng);
                pick(FRAMES[frame], rng).replace("{a}", &a)
            }
            Phrasing::Question(q) => pick(intent.questions[q], rng),
        };
        let text = add_noise(
            &format!(
                "{}{request}{}",
                choose(GREETINGS, rng),
                choose(SIGN_OFFS, rng)
            ),
            rng,
        );
        if words(&text) <= max_words {
            return text;
        }
    }
}

/// Sentence case with final punctuation (half the time), all lower case
/// (a quarter), or lower case without punctuation; a typo one time in six.
fn add_noise(text: &str, rng: &mut Rng) -> String {
    let style = rng.below(4);
    let mut s = match style {
        0 | 1 => sentence_case(text),
        _ => outside_placeholders(text, |c| c.to_lowercase().next()),
    };
    if style == 3 {
        s = outside_placeholders(&s, |c| if ",.?!".contains(c) { None } else { Some(c) });
    } else if !s.ends_with(['?', '!', '.']) {
        s.push(if rng.below(3) == 0 { '!' } else { '.' });
    }
    if rng.below(6) == 0 {
        s = typo(&s, rng);
    }
    s
}

fn sentence_case(text: &str) -> String {
    let mut chars = text.chars();
    let mut s: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    s.extend(chars);
    // "i" alone is the pronoun.
    s.replace(" i ", " I ").replace(" i'", " I'")
}

/// Maps each character outside `{{…}}` placeholders (None drops it).
fn outside_placeholders(text: &str, f: impl Fn(char) -> Option<char>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0;
    let mut prev = ' ';
    for c in text.chars() {
        match (prev, c) {
            ('{', '{') => depth += 1,
            ('}', '}') => depth -= 1,
            _ => {}
        }
        if depth > 0 || c == '{' || c == '}' {
            out.push(c);
        } else if let Some(m) = f(c) {
            out.push(m);
        }
        prev = c;
    }
    out
}

/// Misspells one word that has a known typo, if any.
fn typo(text: &str, rng: &mut Rng) -> String {
    let ws: Vec<&str> = text.split(' ').collect();
    let candidates: Vec<(usize, &str)> = ws
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let bare = w.trim_end_matches([',', '.', '?', '!']);
            TYPOS
                .iter()
                .find(|(from, _)| *from == bare)
                .map(|(_, to)| (i, *to))
        })
        .collect();
    if candidates.is_empty() {
        return text.to_string();
    }
    let (i, to) = choose(&candidates, rng);
    let bare_len = ws[i].trim_end_matches([',', '.', '?', '!']).len();
    let mut out = ws.clone();
    let replaced = format!("{to}{}", &ws[i][bare_len..]);
    out[i] = &replaced;
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use crate::data::support::messages::*;

    #[test]
    fn every_intent_has_training_and_held_out_phrasings() {
        for (i, intent) in INTENTS.iter().enumerate() {
            let ps = phrasings(intent);
            let held = ps.iter().filter(|&&p| held_out(i, p)).count();
            assert!(
                held > 0 && held < ps.len(),
                "{}: {held}/{}",
                intent.name,
                ps.len()
            );
        }
    }

    #[test]
    fn noise_keeps_placeholders() {
        let s = outside_placeholders("hi, {{Order Number}}?", |c| {
            if ",?".contains(c) {
                None
            } else {
                Some(c)
            }
        });
        assert_eq!(s, "hi {{Order Number}}");
    }
}
