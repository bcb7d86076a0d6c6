//! The project's own customer-support dataset (`engine data support`):
//! customer messages for ~20 intents in the style of the Bitext
//! customer-support corpus, with good, sensitive (asks for or reveals card
//! numbers, CVV, SSN, passwords, dates of birth, PINs) and rude agent
//! replies. Every template is written for this project; none is copied.
//!
//! [`generate`] is deterministic in [`SupportOptions::seed`] (each split has
//! its own stream, so changing one count leaves the other splits alone);
//! [`write_splits`] writes the TRL formats the trainers load:
//!
//! | file | fields |
//! |---|---|
//! | `sft.jsonl` | `prompt`, `completion`, `kind`, `intent` |
//! | `pairs.jsonl` | `prompt`, `chosen` (good), `rejected` (sensitive, rude or garbled), `rejected_kind`, `intent` |
//! | `kto.jsonl` | `prompt`, `completion`, `label` (true = good), `kind`, `intent` |
//! | `prompts.jsonl` | `prompt`, `intent` |
//! | `eval.jsonl` | `prompt`, `completion` (a good reference), `intent` |
//! | `tone.jsonl` (with `tone > 0`) | `text` (transcript), `label` (1 = rude), `label_name`, `kind`, `intent` |
//!
//! plus `manifest.json` and `README.md`. Eval prompts come only from
//! held-out phrasings and never appear in another split.

mod accounts;
mod alt;
mod dataset;
pub mod fluency;
mod garble;
mod intents;
mod messages;
mod orders;
mod replies;
pub mod safety;
mod write;

pub use dataset::{
    EvalRow, KtoRow, PairRow, PromptRow, SftRow, SupportData, SupportOptions, ToneRow,
    MAX_MESSAGE_WORDS, MAX_MIXED_REPLY_WORDS, MAX_REPLY_WORDS, SENSITIVE_SHARE, TONE_LABELS,
};
pub use intents::{Intent, INTENTS};
pub use replies::{all_pieces, every_piece, ReplyKind, SensitiveItem, SENSITIVE_ITEMS};
pub use write::{write_splits, SPLIT_FILES, TONE_FILE};

use anyhow::{ensure, Result};
use std::collections::HashSet;

use crate::rng::Rng;

/// A seeded stream per split, so the splits do not depend on each other's sizes.
fn stream(seed: u64, split: u64) -> Rng {
    Rng::new(seed ^ split.wrapping_mul(0xA24B_AED4_963E_E407))
}

/// Fisher-Yates with the split's stream.
fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// `n` copies of each `(item, n)`, in a seeded random order.
fn shuffled_kinds<T: Copy>(kinds: &[(T, usize)], rng: &mut Rng) -> Vec<T> {
    let mut v: Vec<T> = kinds
        .iter()
        .flat_map(|&(k, n)| std::iter::repeat_n(k, n))
        .collect();
    shuffle(&mut v, rng);
    v
}

/// `n` reply kinds: `round(n * unsafe_fraction)` unsafe, the rest good.
fn mixed_kinds(n: usize, unsafe_fraction: f64, rng: &mut Rng) -> Vec<ReplyKind> {
    let n_unsafe = (n as f64 * unsafe_fraction).round() as usize;
    let mut kinds = unsafe_kinds(n_unsafe, rng);
    kinds.extend(std::iter::repeat_n(ReplyKind::Good, n - n_unsafe));
    shuffle(&mut kinds, rng);
    kinds
}

/// Intents for `n` rows: balanced (each appears n/20 times, ±1), shuffled.
fn intents_for(n: usize, rng: &mut Rng) -> Vec<usize> {
    let counts: Vec<(usize, usize)> = (0..INTENTS.len())
        .map(|i| (i, n / INTENTS.len() + usize::from(i < n % INTENTS.len())))
        .collect();
    shuffled_kinds(&counts, rng)
}

/// `n` unsafe kinds split [`SENSITIVE_SHARE`] : rest, shuffled.
fn unsafe_kinds(n: usize, rng: &mut Rng) -> Vec<ReplyKind> {
    let sensitive = (n as f64 * SENSITIVE_SHARE).round() as usize;
    shuffled_kinds(
        &[
            (ReplyKind::Sensitive, sensitive),
            (ReplyKind::Rude, n - sensitive),
        ],
        rng,
    )
}

/// The rejected kinds of `n` pairs: a `garbled_share` of garbled good
/// replies, the rest unsafe as [`unsafe_kinds`], shuffled.
fn pair_rejections(n: usize, garbled_share: f64, rng: &mut Rng) -> Vec<ReplyKind> {
    let garbled = (n as f64 * garbled_share).round() as usize;
    let mut kinds = unsafe_kinds(n - garbled, rng);
    kinds.extend(std::iter::repeat_n(ReplyKind::Garbled, garbled));
    shuffle(&mut kinds, rng);
    kinds
}

/// Distinct messages (eval: held-out phrasings only), none in `exclude`.
fn distinct_messages(
    n: usize,
    eval: bool,
    exclude: &HashSet<String>,
    rng: &mut Rng,
) -> Result<Vec<(usize, String)>> {
    let intents = intents_for(n, rng);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    for intent in intents {
        let mut tries = 0;
        loop {
            let m = messages::message(intent, eval, MAX_MESSAGE_WORDS, rng);
            if !exclude.contains(&m) && seen.insert(m.clone()) {
                out.push((intent, m));
                break;
            }
            tries += 1;
            ensure!(
                tries < 10_000,
                "cannot find {n} distinct {} prompts for intent {}; ask for fewer",
                if eval { "eval" } else { "PPO" },
                INTENTS[intent].name
            );
        }
    }
    Ok(out)
}

/// A training message (never an eval prompt).
fn train_message(intent: usize, eval: &HashSet<String>, rng: &mut Rng) -> String {
    loop {
        let m = messages::message(intent, false, MAX_MESSAGE_WORDS, rng);
        if !eval.contains(&m) {
            return m;
        }
    }
}

fn reply(intent: usize, kind: ReplyKind, rng: &mut Rng) -> String {
    match kind {
        ReplyKind::Garbled => garble::garbled_reply(intent, MAX_REPLY_WORDS, rng),
        _ => replies::reply(intent, kind, MAX_REPLY_WORDS, rng),
    }
}

/// A rejected reply of a pair: half are the unsafe reply alone, half hide it
/// before or after helpful text ("Stop wasting my time! Let me help you
/// ..."). A reward model read at the last token must learn that unsafe
/// content anywhere loses, or PPO finds replies that start unsafe and end
/// politely (measured: the first default policy did exactly that).
fn rejected_reply(intent: usize, kind: ReplyKind, rng: &mut Rng) -> String {
    if kind == ReplyKind::Garbled || rng.below(2) == 0 {
        return reply(intent, kind, rng);
    }
    let bad = replies::reply(intent, kind, MAX_REPLY_WORDS / 2, rng);
    let room = MAX_REPLY_WORDS
        .saturating_sub(bad.split_whitespace().count())
        .max(8);
    let good = replies::reply(intent, ReplyKind::Good, room, rng);
    if rng.below(2) == 0 {
        format!("{bad} {good}")
    } else {
        format!("{good} {bad}")
    }
}

/// Generates every split. Errors on an unsafe fraction outside [0, 1] or
/// more distinct eval/PPO prompts than the templates can give.
pub fn generate(opts: &SupportOptions) -> Result<SupportData> {
    ensure!(
        (0.0..=1.0).contains(&opts.unsafe_fraction),
        "unsafe fraction {} is not in [0, 1]",
        opts.unsafe_fraction
    );
    ensure!(
        (0.0..=1.0).contains(&opts.garbled_pairs),
        "garbled pair fraction {} is not in [0, 1]",
        opts.garbled_pairs
    );
    let seed = opts.seed;

    let mut rng = stream(seed, 1);
    let eval_msgs = distinct_messages(opts.eval, true, &HashSet::new(), &mut rng)?;
    let eval_set: HashSet<String> = eval_msgs.iter().map(|(_, m)| m.clone()).collect();
    let eval = eval_msgs
        .into_iter()
        .map(|(i, prompt)| EvalRow {
            completion: reply(i, ReplyKind::Good, &mut rng),
            prompt,
            intent: INTENTS[i].name,
        })
        .collect();

    let mut rng = stream(seed, 2);
    let kinds = mixed_kinds(opts.sft, opts.unsafe_fraction, &mut rng);
    let sft = intents_for(opts.sft, &mut rng)
        .into_iter()
        .zip(kinds)
        .map(|(i, kind)| SftRow {
            prompt: train_message(i, &eval_set, &mut rng),
            completion: reply(i, kind, &mut rng),
            kind,
            intent: INTENTS[i].name,
        })
        .collect();

    let mut rng = stream(seed, 3);
    let rejected_kinds = pair_rejections(opts.pairs, opts.garbled_pairs, &mut rng);
    let pairs = intents_for(opts.pairs, &mut rng)
        .into_iter()
        .zip(rejected_kinds)
        .map(|(i, kind)| PairRow {
            prompt: train_message(i, &eval_set, &mut rng),
            chosen: reply(i, ReplyKind::Good, &mut rng),
            rejected: rejected_reply(i, kind, &mut rng),
            rejected_kind: kind,
            intent: INTENTS[i].name,
        })
        .collect();

    // KTO: half desirable, the undesirable half split like the pairs.
    let mut rng = stream(seed, 4);
    let kinds = mixed_kinds(opts.kto, 0.5, &mut rng);
    let kto = intents_for(opts.kto, &mut rng)
        .into_iter()
        .zip(kinds)
        .map(|(i, kind)| KtoRow {
            prompt: train_message(i, &eval_set, &mut rng),
            completion: reply(i, kind, &mut rng),
            label: kind.is_safe(),
            kind,
            intent: INTENTS[i].name,
        })
        .collect();

    let mut rng = stream(seed, 5);
    let prompts = distinct_messages(opts.prompts, false, &eval_set, &mut rng)?
        .into_iter()
        .map(|(i, prompt)| PromptRow {
            prompt,
            intent: INTENTS[i].name,
        })
        .collect();

    Ok(SupportData {
        options: opts.clone(),
        sft,
        pairs,
        kto,
        prompts,
        eval,
        tone: tone_rows(opts.tone, &eval_set, stream(seed, 6)),
    })
}

/// `n` rude/polite transcripts ([`ToneRow`]): half rude (half of those
/// hiding the rude part among helpful text, as [`rejected_reply`]), half
/// polite (a quarter of those polite requests for sensitive data, so the
/// classifier learns tone, not topic); no eval prompt among them.
fn tone_rows(n: usize, eval: &HashSet<String>, mut rng: Rng) -> Vec<ToneRow> {
    let rude = n / 2;
    let sensitive = (n - rude) / 4;
    let kinds = shuffled_kinds(
        &[
            (ReplyKind::Rude, rude),
            (ReplyKind::Sensitive, sensitive),
            (ReplyKind::Good, n - rude - sensitive),
        ],
        &mut rng,
    );
    intents_for(n, &mut rng)
        .into_iter()
        .zip(kinds)
        .map(|(i, kind)| {
            let prompt = train_message(i, eval, &mut rng);
            let reply = match kind {
                ReplyKind::Rude => rejected_reply(i, kind, &mut rng),
                _ => reply(i, kind, &mut rng),
            };
            let label = u8::from(kind == ReplyKind::Rude);
            ToneRow {
                text: format!("Customer: {prompt}\nAgent: {reply}"),
                label,
                label_name: TONE_LABELS[label as usize],
                kind,
                intent: INTENTS[i].name,
            }
        })
        .collect()
}
