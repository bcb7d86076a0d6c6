//! Agent replies of three kinds. Each kind shows itself early (a polite
//! opener; a request for, or disclosure of, sensitive data; a dismissive
//! line), and the rest of the reply is about the customer's intent, so a
//! tiny reward model has both an easy signal and real variety.
//!
//! `{goal}` is the intent's goal ("cancel your order {{Order Number}}"),
//! `{topic}` its noun, `{item}` a sensitive noun phrase, `{value}` the
//! placeholder of its value.

use serde::Serialize;

use super::alt::{choose, expand_all, pick, words};
use super::intents::{Intent, INTENTS};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyKind {
    Good,
    Sensitive,
    Rude,
    /// A good reply with one sentence broken ([`super::garble`]): only ever
    /// the rejected side of a reward pair.
    Garbled,
}

impl ReplyKind {
    /// The kinds written from templates (every one has its pieces).
    pub const ALL: [ReplyKind; 3] = [ReplyKind::Good, ReplyKind::Sensitive, ReplyKind::Rude];

    /// Neither asks for sensitive data nor is rude (what the safety checker
    /// flags): a garbled reply is broken, not unsafe.
    pub fn is_safe(self) -> bool {
        matches!(self, ReplyKind::Good | ReplyKind::Garbled)
    }

    pub fn name(self) -> &'static str {
        match self {
            ReplyKind::Good => "good",
            ReplyKind::Sensitive => "sensitive",
            ReplyKind::Rude => "rude",
            ReplyKind::Garbled => "garbled",
        }
    }
}

const OPENERS: &[&str] = &[
    "[Happy|Glad] to help[!|.]",
    "Thanks for reaching out[!|.]",
    "Of course[!|.]",
    "Certainly[!|.]",
    "Sure thing!",
    "Thank you for contacting us.",
    "Great question!",
    "I'd be glad to help.",
    "Absolutely[!|.]",
    "Thanks for [your message|asking|your patience]!",
    "I understand, [let me help|I'm here to help].",
    "Hello, and thanks for [writing|getting in touch].",
    "[Hi|Hello] there, [happy|glad] to assist.",
];

const ACKS: &[&str] = &[
    "I can help you {goal}.",
    "Let me help you {goal}.",
    "I'll [gladly|happily] help you {goal}.",
    "Let's {goal} together.",
];

const CLOSERS: &[&str] = &[
    "Anything else I can [help with|do for you]?",
    "Let me know if [you need anything else|there's anything else].",
    "Have a [great|lovely|nice] day!",
    "Thanks for [choosing us|your patience].",
    "We're here [24/7|anytime] if you need us.",
    "You can also reach us at {{Customer Support Phone Number}}.",
    "Hope that helps!",
    "Feel free to [write|reply] if anything is unclear.",
];

/// Good closers for payment and account intents: they name sensitive data
/// in a negated request, so neither the reward model nor the checker can
/// rely on the noun alone.
const SECURITY_CLOSERS: &[&str] = &[
    "[For your security|To keep you safe], we will never ask for your [password|full card number|PIN|CVV].",
    "Please never share your [password|card number|CVV] with anyone, including us.",
    "We never need your [password|card number|Social Security number] to help with this.",
];

/// A kind of sensitive data: noun phrases for it and its value placeholder.
pub struct SensitiveItem {
    pub what: &'static str,
    pub nouns: &'static [&'static str],
    pub value: &'static str,
}

pub const SENSITIVE_ITEMS: &[SensitiveItem] = &[
    SensitiveItem {
        what: "card number",
        nouns: &[
            "full card number",
            "[credit|debit] card number",
            "16-digit card number",
            "complete card number",
        ],
        value: "{{Credit Card Number}}",
    },
    SensitiveItem {
        what: "cvv",
        nouns: &[
            "CVV",
            "CVV code",
            "card security code",
            "three-digit security code",
        ],
        value: "{{CVV}}",
    },
    SensitiveItem {
        what: "ssn",
        nouns: &["Social Security number", "SSN"],
        value: "{{SSN}}",
    },
    SensitiveItem {
        what: "password",
        nouns: &["password", "account password", "login password"],
        value: "{{Password}}",
    },
    SensitiveItem {
        what: "date of birth",
        nouns: &["date of birth", "full date of birth", "birth date"],
        value: "{{Date of Birth}}",
    },
    SensitiveItem {
        what: "pin",
        nouns: &["PIN", "card PIN", "four-digit PIN"],
        value: "{{PIN}}",
    },
];

/// Requests for sensitive data; the item comes within the first words.
const REQUEST_LEADS: &[&str] = &[
    "First, [send|give] me your {item}.",
    "[Before I can help|To continue|Before we start], I need your {item}.",
    "Please [reply with|send|provide] your {item}.",
    "What is your {item}?",
    "Tell me your {item} [first|now|please].",
    "[To verify you|For verification|For security], [type|enter|confirm] your {item} here.",
    "I'll need your {item} [first|to proceed].",
    "Just [share|send] your {item} [in this chat|here].",
    "Can you [give|send] me your {item}?",
];

/// Disclosures of sensitive data.
const REVEAL_LEADS: &[&str] = &[
    "Your {item} [on file|on record] is {value}.",
    "[For reference|Just so you know], your {item} is {value}.",
    "I can see your {item} is {value}.",
];

const SENSITIVE_TAILS: &[&str] = &[
    "Then I can {goal}.",
    "After that I will {goal}.",
    "Once I have it, I'll {goal}.",
    "I need it to {goal}.",
];

const REVEAL_TAILS: &[&str] = &["Now I can {goal}.", "[Next|Now] I will {goal}."];

/// Short polite openers that sometimes precede an unsafe request, as in
/// real logs (the request still comes within the first six words).
const POLITE_PREFIXES: &[&str] = &["Sure!", "Of course.", "Happy to help.", "Certainly!"];

const RUDE_LEADS: &[&str] = &[
    "That's not my problem[.|!]",
    "Not my [job|problem], [honestly|seriously].",
    "[Figure|Sort] it out yourself.",
    "Stop wasting my time[.|!]",
    "Ugh, [another|yet another] {topic} question.",
    "Whatever.",
    "Read the [FAQ|website] yourself.",
    "I don't care about your {topic}.",
    "Deal with it.",
    "Do I look like I care?",
    "[Seriously|Honestly]? That's your problem, not mine.",
    "Go away, I'm busy.",
    "Too bad[.|!]",
    "What a [stupid|dumb|silly] question.",
    "Nobody [here |]cares about your {topic}.",
    "Stop bothering us with your {topic}.",
    "[Tough luck|Your loss].",
    "Can't you read? It's all on the website.",
];

const RUDE_TAILS: &[&str] = &[
    "[Go|Just] {goal} yourself.",
    "It's on the website somewhere.",
    "Call {{Customer Support Phone Number}} and stop bothering me.",
    "I have better things to do.",
    "Don't expect [a reply|any help] from me.",
];

fn fill(template: &str, intent: &Intent, rng: &mut Rng) -> String {
    pick(template, rng)
        .replace("{goal}", &pick(intent.goal, rng))
        .replace("{topic}", intent.topic)
}

/// Joins sentences, dropping optional ones (last first) until the reply
/// fits in `max_words`. `parts`: (text, required).
fn compose(mut parts: Vec<(String, bool)>, max_words: usize) -> String {
    let total = |p: &[(String, bool)]| p.iter().map(|(s, _)| words(s)).sum::<usize>();
    while total(&parts) > max_words {
        match parts.iter().rposition(|(_, required)| !required) {
            Some(i) => {
                parts.remove(i);
            }
            None => break,
        }
    }
    let texts: Vec<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
    texts.join(" ")
}

/// One reply of `kind` for intent `intent_index`, at most `max_words` words
/// where the pieces allow (tests check that they always do).
pub fn reply(intent_index: usize, kind: ReplyKind, max_words: usize, rng: &mut Rng) -> String {
    let intent = &INTENTS[intent_index];
    let mut parts = Vec::new();
    match kind {
        // A garbled reply is not written from templates: [`super::garble`]
        // breaks a good one, which is what this writes for it.
        ReplyKind::Good | ReplyKind::Garbled => {
            parts.push((pick(choose(OPENERS, rng), rng), true));
            if rng.below(2) == 0 {
                parts.push((fill(choose(ACKS, rng), intent, rng), false));
            }
            parts.push((fill(choose(intent.helps, rng), intent, rng), true));
            if rng.below(5) < 3 {
                let closers = if intent.security && rng.below(4) == 0 {
                    SECURITY_CLOSERS
                } else {
                    CLOSERS
                };
                parts.push((pick(choose(closers, rng), rng), false));
            }
        }
        ReplyKind::Sensitive => {
            if rng.below(3) == 0 {
                parts.push((choose(POLITE_PREFIXES, rng).to_string(), false));
            }
            let item = &SENSITIVE_ITEMS[rng.below(SENSITIVE_ITEMS.len())];
            let noun = pick(choose(item.nouns, rng), rng);
            let (leads, tails) = if rng.below(5) == 0 {
                (REVEAL_LEADS, REVEAL_TAILS)
            } else {
                (REQUEST_LEADS, SENSITIVE_TAILS)
            };
            let lead = pick(choose(leads, rng), rng)
                .replace("{item}", &noun)
                .replace("{value}", item.value);
            parts.push((lead, true));
            if rng.below(4) > 0 {
                parts.push((fill(choose(tails, rng), intent, rng), false));
            }
        }
        ReplyKind::Rude => {
            parts.push((fill(choose(RUDE_LEADS, rng), intent, rng), true));
            if rng.below(4) > 0 {
                parts.push((fill(choose(RUDE_TAILS, rng), intent, rng), false));
            }
        }
    }
    compose(parts, max_words)
}

/// Every piece any reply can be made of, of every kind, fully expanded for
/// every intent: leads, tails, openers, closers and polite prefixes (what
/// [`super::fluency`] accepts as a well-formed sentence).
pub fn every_piece() -> Vec<String> {
    let mut out = Vec::new();
    for intent in INTENTS.iter() {
        let tables: [&[&str]; 12] = [
            OPENERS,
            ACKS,
            intent.helps,
            CLOSERS,
            SECURITY_CLOSERS,
            SENSITIVE_TAILS,
            REVEAL_TAILS,
            POLITE_PREFIXES,
            RUDE_LEADS,
            RUDE_TAILS,
            REQUEST_LEADS,
            REVEAL_LEADS,
        ];
        for t in tables.iter().flat_map(|t| t.iter()) {
            for s in expand_all(t) {
                for goal in expand_all(intent.goal) {
                    out.push(s.replace("{goal}", &goal).replace("{topic}", intent.topic));
                }
            }
        }
    }
    // `{item}` and `{value}` stay as slots: placeholders are normalised away
    // and the nouns expanded here.
    let nouns: Vec<(String, &str)> = SENSITIVE_ITEMS
        .iter()
        .flat_map(|i| {
            i.nouns
                .iter()
                .flat_map(|n| expand_all(n))
                .map(|n| (n, i.value))
        })
        .collect();
    out = out
        .into_iter()
        .flat_map(|s| {
            if s.contains("{item}") {
                nouns
                    .iter()
                    .map(|(n, v)| s.replace("{item}", n).replace("{value}", v))
                    .collect()
            } else {
                vec![s]
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every sentence a reply of `kind` can contain, fully expanded for every
/// intent: good replies are made only of these, and every sensitive or rude
/// reply contains one of its kind's leads (for exhaustive checker tests).
pub fn all_pieces(kind: ReplyKind) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |templates: &[&str], intent: &Intent| {
        for t in templates {
            for s in expand_all(t) {
                for goal in expand_all(intent.goal) {
                    out.push(s.replace("{goal}", &goal).replace("{topic}", intent.topic));
                }
            }
        }
    };
    for intent in INTENTS.iter() {
        match kind {
            ReplyKind::Good => {
                add(OPENERS, intent);
                add(ACKS, intent);
                add(intent.helps, intent);
                add(CLOSERS, intent);
                add(SECURITY_CLOSERS, intent);
            }
            ReplyKind::Rude => add(RUDE_LEADS, intent),
            ReplyKind::Sensitive | ReplyKind::Garbled => {}
        }
    }
    if kind == ReplyKind::Sensitive {
        for item in SENSITIVE_ITEMS {
            for noun in item.nouns.iter().flat_map(|n| expand_all(n)) {
                for lead in REQUEST_LEADS
                    .iter()
                    .chain(REVEAL_LEADS)
                    .flat_map(|l| expand_all(l))
                {
                    out.push(lead.replace("{item}", &noun).replace("{value}", item.value));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
