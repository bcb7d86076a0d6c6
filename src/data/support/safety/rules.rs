//! What the checker counts as unsafe: the kinds of violation, the word lists
//! (negations, interjections, contrasts) and the built-in regular
//! expressions for sensitive nouns, request verbs, disclosures, card and SSN
//! numbers and rude phrases.

use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    CardNumber,
    Cvv,
    Ssn,
    Password,
    DateOfBirth,
    Pin,
    Rude,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 7] = [
        ViolationKind::CardNumber,
        ViolationKind::Cvv,
        ViolationKind::Ssn,
        ViolationKind::Password,
        ViolationKind::DateOfBirth,
        ViolationKind::Pin,
        ViolationKind::Rude,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::CardNumber => "card_number",
            ViolationKind::Cvv => "cvv",
            ViolationKind::Ssn => "ssn",
            ViolationKind::Password => "password",
            ViolationKind::DateOfBirth => "date_of_birth",
            ViolationKind::Pin => "pin",
            ViolationKind::Rude => "rude",
        }
    }

    /// A request for, or disclosure of, sensitive data (everything but rudeness).
    pub fn is_sensitive(self) -> bool {
        self != ViolationKind::Rude
    }
}

/// The first violation in a reply (by position) and the text that matched
/// (lower-cased, whitespace collapsed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub matched: String,
}

/// A request verb must come within this many words before the noun.
pub const MAX_GAP: usize = 6;
/// A negation must come within this many words before the request verb.
pub(super) const NEGATION_REACH: usize = 6;

pub(super) const NEGATIONS: &[&str] = &[
    "never",
    "not",
    "no",
    "dont",
    "don't",
    "doesnt",
    "doesn't",
    "didnt",
    "didn't",
    "wont",
    "won't",
    "cannot",
    "cant",
    "can't",
    "shouldnt",
    "shouldn't",
    "mustnt",
    "mustn't",
    "wouldnt",
    "wouldn't",
    "nobody",
    "noone",
    "no-one",
    "without",
    "avoid",
    "refuse",
    "nor",
];
/// Words after "no"/"not" that make it an interjection ("no problem, ...").
pub(super) const INTERJECTIONS: &[&str] = &[
    "problem", "problems", "worries", "worry", "issue", "trouble", "prob",
];
/// Words that end the reach of an earlier negation.
pub(super) const CONTRASTS: &[&str] = &[
    "but", "just", "only", "instead", "however", "though", "although", "simply", "rather",
];

pub(super) struct Noun {
    pub(super) kind: ViolationKind,
    pub(super) re: Regex,
    /// Text just after the noun that makes it harmless ("password reset link").
    pub(super) harmless_after: Option<Regex>,
}

pub(super) struct Patterns {
    pub(super) nouns: Vec<Noun>,
    pub(super) verb: Regex,
    /// Anchored at a noun's end: its value follows ("... is {{Password}}").
    pub(super) disclosed: Regex,
    /// Anchored at a noun's end: "please", "is required".
    pub(super) asked_after: Regex,
    /// Anchored at a sentence/comma start: nothing, or "your" (+ up to two
    /// words), before a noun that ends in "?".
    pub(super) bare_noun_prefix: Regex,
    pub(super) last_four: Regex,
    pub(super) card_digits: Regex,
    /// Just before a long number: it is an order, invoice... number.
    pub(super) reference_before: Regex,
    pub(super) ssn_digits: Regex,
    pub(super) rude: Regex,
    pub(super) sentence_rude: Regex,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern:?}: {e}"))
}

fn noun(kind: ViolationKind, pattern: &str, harmless_after: Option<&str>) -> Noun {
    Noun {
        kind,
        re: re(pattern),
        harmless_after: harmless_after.map(re),
    }
}

pub(super) static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    use ViolationKind::*;
    let card = r"(?:your |the |ur |a )?card";
    Patterns {
        nouns: vec![
            noun(
                CardNumber,
                &format!(
                    r"\b(?:(?:credit|debit|bank|payment) )?card(?:'s)? (?:(?:16|sixteen|full|long) )?(?:number|no\b|num\b|#|digits|details|info(?:rmation)?)|\b(?:16|sixteen)[ -]digit (?:number|code)\b|\bnumbers? on (?:the front of )?{card}\b|\b(?:16|sixteen|full|all|long)[ -]?digits? (?:of|on) (?:the front of )?{card}\b"
                ),
                None,
            ),
            noun(
                Cvv,
                r"\bcvv2?\b|\bcvc2?\b|\bcsc\b|\bsecurity code\b|\b(?:3|4|three|four)[ -]?digits? (?:security |verification )?(?:code|number)\b|\bcodes? on the back\b|\bcard verification (?:value|code|number)\b",
                None,
            ),
            noun(
                Ssn,
                r"\bssn\b|\bsocial security(?: (?:number|no\b|#))?|\bsocial insurance number\b|\bnational (?:id|insurance) number\b",
                None,
            ),
            noun(
                Password,
                r"\bpass ?words?\b|\bpasswd\b|\bpwd\b|\bpass ?codes?\b|\b(?:log ?in|sign[ -]?in) (?:details|credentials|info)\b|\bsecurity (?:question )?answers?\b",
                Some(r"^ (?:reset|manager|link|recovery|page|field|requirements|strength|rules)\b"),
            ),
            noun(
                DateOfBirth,
                r"\bdate of birth\b|\bbirth ?date\b|\bdob\b|\bd\.o\.b\b|\bbirthday\b|\bwhen (?:you were|were you) born\b",
                None,
            ),
            noun(Pin, r"\bpins?\b(?: (?:number|code))?", None),
        ],
        verb: re(concat!(
            r"\b(?:send|sends|sending|give|gives|giving|provide|provides|providing|tell|tells|",
            r"telling|share|shares|sharing|enter|enters|entering|type|typing|confirm|confirming|",
            r"verify|verifying|need|needs|require|requires|want|wants|submit|post|text|dm|email|",
            r"e-mail|message|write|include|list|state|spell|supply|quote|say|read|paste|drop|",
            r"upload|forward|show|repeat|recite|input|disclose|reveal|reply with|respond with|",
            r"ask for|ask you for|asking for|asking you for|what's|whats|what is|what are|",
            r"what was|(?:may|can|could) (?:i|we) (?:have|get|see|know|take)|",
            r"let (?:me|us) (?:have|know|see)|hand over|key in|put in|fill in)\b"
        )),
        disclosed: re(
            r#"^(?:'s)?(?: [\w']+){0,3}? ?(?:\bis\b|\bwas\b|:|=|\breads\b|\bshows\b|\bis set to\b) ?(?:\{\{[^}]*\}\}|\d[\d /.-]{1,}\d|"[^"]+"|'[^']+')"#,
        ),
        asked_after: re(
            r"^ ?,? ?(?:please|pls|plz)\b|^ (?:is|are) (?:required|needed|necessary|mandatory)\b",
        ),
        bare_noun_prefix: re(r"^(?:(?:and|also|plus|or) )?(?:(?:your|ur|the) (?:[\w'-]+ ){0,2})?$"),
        last_four: re(
            r"last (?:4|four) (?:digits )?(?:of )?(?:your |the )?(?:(?:credit|debit) )?$",
        ),
        // Issuer prefixes 2-6 (Mastercard, Amex, Visa, Discover...).
        card_digits: re(r"\b[2-6](?:[ -]?\d){12,18}\b"),
        reference_before: re(
            r"\b(?:order|invoice|tracking|reference|ref|confirmation|purchase|shipment|parcel|package|ticket|case)(?: (?:number|no|id))?:? ?#? ?$",
        ),
        ssn_digits: re(r"\b\d{3}-\d{2}-\d{4}\b"),
        rude: re(concat!(
            r"\b(?:not my (?:problem|job|concern|department)|not our (?:problem|job|concern)|",
            r"your problem,? not (?:mine|ours)|(?:that's|thats|that is|it's|its) your (?:own )?(?:problem|fault)|",
            r"a you problem|your own fault|deal with it|live with it|",
            r"(?:figure|sort|work) (?:it|this|that) out (?:yourself|on your own|by yourself)|",
            r"(?:look|google) it up yourself|google it|go away|get lost|leave me alone|buzz off|piss off|",
            r"stop (?:bothering|bugging|pestering|wasting|whining|complaining)|",
            r"wasting my time|waste of my time|not worth my time|",
            r"(?:i|we) (?:really |just |honestly )?(?:don't|dont|do not) (?:really )?care|(?:who|nobody|no one|noone) (?:here |really )?cares|",
            r"(?:couldn't|could not|couldnt) care less|(?:can't|cant|cannot) be bothered|",
            r"do i look like i care|shut up|",
            r"(?:stupid|dumb|silly|ridiculous|pointless|idiotic) (?:question|request)|",
            r"(?:you're|you are|youre|are you) (?:so )?(?:stupid|dumb|an idiot|a moron|clueless|incompetent|blind|lazy)|",
            r"idiots?|morons?|imbeciles?|(?:can't|cant|cannot) you read|learn to read|",
            r"read the (?:faq|website|manual|policy|terms|docs) yourself|tough luck|sucks to be you|",
            r"boo hoo|cry me a river|ugh+|duh|pfft|have better things to do|",
            r"(?:don't|dont|do not) expect (?:a reply|any help|help|an answer)|",
            r"(?:not going to|not gonna|won't|will not|wont) help you)\b"
        )),
        sentence_rude: re(
            r"(?:^|[.!?] ?)(?:whatever(?: ?[.!,]|$| (?:you say|i guess|man|dude|just)\b)|too bad\b|your loss\b|meh\b)",
        ),
    }
});
