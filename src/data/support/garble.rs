//! Garbled replies: a good reply with one sentence broken the way a small
//! language model breaks it (measured on the default policy's samples:
//! "I'll send a reset link a team.", "Thanks for your original payment
//! method from the payment method."). They are the rejected side of some
//! reward pairs, so the reward model learns that a broken sentence loses
//! to a whole one and PPO cannot buy reward with fragments of safe words.
//!
//! Three breaks, each of one sentence with at least four words:
//! - splice: its first words, then the tail of another reply's sentence;
//! - drop: one or two words from its middle go missing;
//! - repeat: a span of two or three of its words is said twice.
//!
//! A garbled reply always fails the fluency judge ([`WellFormed`]): the
//! generator re-draws until it does, so the labels never lie.

use super::alt::words;
use super::fluency::{split_sentences, WellFormed};
use super::intents::INTENTS;
use super::replies::{reply, ReplyKind};
use super::safety::check_reply;
use crate::rng::Rng;

/// A good reply for `intent_index` with one sentence broken, the splice
/// donor another intent's good reply; re-drawn until it fits in
/// `max_words` (a splice can lengthen the sentence) and the unsafe-reply
/// checker passes it (a stutter can make "send a password send a
/// password", which reads as a request).
pub fn garbled_reply(intent_index: usize, max_words: usize, rng: &mut Rng) -> String {
    loop {
        let good = reply(intent_index, ReplyKind::Good, max_words, rng);
        let donor = reply(rng.below(INTENTS.len()), ReplyKind::Good, max_words, rng);
        // Every good reply has a helping sentence of four or more words,
        // so a break is found within a try or two.
        if let Some(broken) = garble(&good, &donor, rng) {
            if words(&broken) <= max_words && check_reply(&broken).is_none() {
                return broken;
            }
        }
    }
}

/// `good` with one sentence broken, or `None` when no break of it fails
/// the judge in a few tries (a reply of only very short sentences).
/// `donor` supplies the spliced-in tails: another good reply.
pub fn garble(good: &str, donor: &str, rng: &mut Rng) -> Option<String> {
    let (good, donor) = (sentences(good), sentences(donor));
    let sentences: Vec<Vec<&str>> = good
        .iter()
        .map(|s| s.split_whitespace().collect())
        .collect();
    let donors: Vec<Vec<&str>> = donor
        .iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>())
        .filter(|s| s.len() >= 3)
        .collect();
    let long: Vec<usize> = (0..sentences.len())
        .filter(|&i| sentences[i].len() >= 4)
        .collect();
    if long.is_empty() {
        return None;
    }
    for _ in 0..16 {
        let at = long[rng.below(long.len())];
        let broken = match rng.below(3) {
            0 => splice(&sentences[at], &donors, rng),
            1 => Some(drop_words(&sentences[at], rng)),
            _ => Some(repeat_span(&sentences[at], rng)),
        };
        let Some(broken) = broken else { continue };
        let mut out: Vec<String> = sentences.iter().map(|s| s.join(" ")).collect();
        out[at] = broken;
        let text = out.join(" ");
        let judged = WellFormed::support().judge(&text);
        if judged.well_formed < judged.total {
            return Some(text);
        }
    }
    None
}

/// The sentences of `text` as the fluency judge splits them (the
/// unterminated rest last).
fn sentences(text: &str) -> Vec<String> {
    let (done, rest) = split_sentences(text);
    done.into_iter().chain(rest).collect()
}

/// The first `k` words of `s`, then another sentence from its word `j` on.
fn splice(s: &[&str], donors: &[Vec<&str>], rng: &mut Rng) -> Option<String> {
    if donors.is_empty() {
        return None;
    }
    let d = &donors[rng.below(donors.len())];
    let k = 1 + rng.below(s.len() - 2);
    let j = 1 + rng.below(d.len() - 1);
    Some(
        s[..k]
            .iter()
            .chain(&d[j..])
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// `s` without one or two of its inner words (never the last, which ends it).
fn drop_words(s: &[&str], rng: &mut Rng) -> String {
    let n = 1 + rng.below(2).min(s.len() - 3);
    let at = 1 + rng.below(s.len() - 1 - n);
    let kept: Vec<&str> = s[..at].iter().chain(&s[at + n..]).copied().collect();
    kept.join(" ")
}

/// `s` with a span of two or three words said twice (never its last word,
/// whose full stop would end the sentence early).
fn repeat_span(s: &[&str], rng: &mut Rng) -> String {
    let n = (2 + rng.below(2)).min(s.len() - 2);
    let at = rng.below(s.len() - n);
    let mut out: Vec<&str> = s[..at + n].to_vec();
    out.extend_from_slice(&s[at..at + n]);
    out.extend_from_slice(&s[at + n..]);
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_the_judges_sentences() {
        let s = sentences("Happy to help! Order {{Order Number}} is on its way. Thanks");
        assert_eq!(
            s,
            [
                "Happy to help!",
                "Order {{Order Number}} is on its way.",
                "Thanks"
            ]
        );
    }
}
