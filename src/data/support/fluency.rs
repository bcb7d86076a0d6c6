//! `well_formed_rate`: how much of a reply is sentences the support-data
//! generator can write, a fluency measure that needs no model (the reward
//! model is what PPO optimises, so it cannot also judge fluency).
//!
//! A reply is split into sentences after `.`, `!` or `?` followed by
//! whitespace (the generator's pieces are split the same way, so a piece
//! such as "Seriously? That's your problem, not mine." gives two). Before
//! comparing, whitespace is collapsed and every Bitext placeholder
//! (`{{Order Number}}`) becomes `{{}}`: a policy that writes the invoice
//! placeholder where the order one belongs still writes a sentence.
//!
//! A sentence is well formed when it is exactly one the generator can write
//! ([`super::replies::every_piece`], every intent and alternative expanded). An
//! unterminated last sentence (the response hit its token limit) is well
//! formed when it is the start of such a sentence. An empty reply counts as
//! one sentence that is not well formed, so silence never scores 1.
//! `well_formed_rate` of many replies = well-formed sentences / sentences.

use std::collections::HashSet;
use std::sync::LazyLock;

/// Well-formed and total sentences of one or more replies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SentenceCount {
    pub well_formed: usize,
    pub total: usize,
}

impl SentenceCount {
    /// `well_formed / total` (1 when there is nothing to judge).
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.well_formed as f64 / self.total as f64
        }
    }
}

impl std::ops::Add for SentenceCount {
    type Output = SentenceCount;
    fn add(self, o: SentenceCount) -> SentenceCount {
        SentenceCount {
            well_formed: self.well_formed + o.well_formed,
            total: self.total + o.total,
        }
    }
}

/// The generator's sentences, normalised: a set for whole sentences and a
/// sorted list for the start of a cut-off last one.
pub struct WellFormed {
    whole: HashSet<String>,
    sorted: Vec<String>,
}

static SUPPORT: LazyLock<WellFormed> =
    LazyLock::new(|| WellFormed::new(&super::replies::every_piece()));

impl WellFormed {
    /// The judge for `engine data support` replies (built once).
    pub fn support() -> &'static WellFormed {
        &SUPPORT
    }

    /// A judge accepting the sentences of `pieces`.
    pub fn new(pieces: &[String]) -> WellFormed {
        let whole: HashSet<String> = pieces
            .iter()
            .flat_map(|p| split_sentences(&normalise(p)).0)
            .collect();
        let mut sorted: Vec<String> = whole.iter().cloned().collect();
        sorted.sort();
        WellFormed { whole, sorted }
    }

    /// Counts the well-formed sentences of one reply.
    pub fn judge(&self, reply: &str) -> SentenceCount {
        let (done, rest) = split_sentences(&normalise(reply));
        if done.is_empty() && rest.is_none() {
            return SentenceCount {
                well_formed: 0,
                total: 1,
            };
        }
        let mut n = SentenceCount {
            well_formed: done.iter().filter(|s| self.whole.contains(*s)).count(),
            total: done.len(),
        };
        if let Some(rest) = rest {
            n.total += 1;
            n.well_formed += usize::from(self.starts_a_sentence(&rest));
        }
        n
    }

    /// `well_formed_rate` over `replies`.
    pub fn rate<'a>(&self, replies: impl IntoIterator<Item = &'a str>) -> f64 {
        replies
            .into_iter()
            .map(|r| self.judge(r))
            .fold(SentenceCount::default(), |a, b| a + b)
            .rate()
    }

    fn starts_a_sentence(&self, prefix: &str) -> bool {
        let i = self.sorted.partition_point(|s| s.as_str() < prefix);
        self.sorted.get(i).is_some_and(|s| s.starts_with(prefix))
    }
}

/// Collapses whitespace and turns each `{{…}}` into `{{}}`; an unclosed
/// `{{…` at the end (a cut-off reply) becomes `{{`.
fn normalise(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(flat.len());
    let mut rest = flat.as_str();
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open + 2]);
        match rest[open + 2..].find("}}") {
            Some(close) => {
                out.push_str("}}");
                rest = &rest[open + 2 + close + 2..];
            }
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Whole sentences (ending in `.`, `!` or `?`) and the unterminated rest
/// (also how [`super::garble`] finds the sentence it breaks).
pub(super) fn split_sentences(text: &str) -> (Vec<String>, Option<String>) {
    let mut done = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ends = matches!(b, b'.' | b'!' | b'?')
            && bytes.get(i + 1).is_none_or(|c| c.is_ascii_whitespace());
        if ends {
            done.push(text[start..=i].trim().to_string());
            start = i + 1;
        }
    }
    let rest = text[start..].trim();
    (done, (!rest.is_empty()).then(|| rest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_normalises() {
        assert_eq!(
            split_sentences("Hi there! Order {{}} is gone. And"),
            (
                vec!["Hi there!".to_string(), "Order {{}} is gone.".to_string()],
                Some("And".to_string())
            )
        );
        assert_eq!(normalise("a  {{Order Number}}\nb {{Inv"), "a {{}} b {{");
    }
}
