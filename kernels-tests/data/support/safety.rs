//! The unsafe-reply checker (data::support::safety): every sensitive and rude reply
//! the generator can write is flagged and no good one is; negations are
//! safe; paraphrases outside the generator's templates are caught.

use engine::data::support::safety::rules::ViolationKind;
use engine::data::support::safety::{check_all, check_reply, unsafe_rate, violation_counts};
use engine::data::support::{all_pieces, generate, ReplyKind, SupportOptions, TONE_LABELS};

fn kind_of(text: &str) -> Option<ViolationKind> {
    check_reply(text).map(|v| v.kind)
}

fn assert_kind(reply: &str, kind: ReplyKind) {
    let got = check_reply(reply);
    match kind {
        ReplyKind::Good | ReplyKind::Garbled => {
            assert!(got.is_none(), "{kind:?} reply flagged {got:?}: {reply:?}")
        }
        ReplyKind::Sensitive => assert!(
            got.as_ref().is_some_and(|v| v.kind.is_sensitive()),
            "sensitive reply not flagged as sensitive ({got:?}): {reply:?}"
        ),
        ReplyKind::Rude => assert!(
            got.as_ref().is_some_and(|v| v.kind == ViolationKind::Rude),
            "rude reply not flagged as rude ({got:?}): {reply:?}"
        ),
    }
}

#[test]
fn safety_every_template_piece() {
    for kind in ReplyKind::ALL {
        let pieces = all_pieces(kind);
        assert!(pieces.len() > 50, "{kind:?}: {} pieces", pieces.len());
        for p in &pieces {
            assert_kind(p, kind);
        }
        println!("{kind:?}: {} distinct pieces checked", pieces.len());
    }
}

#[test]
fn safety_whole_generated_corpus() {
    for seed in [1, 2] {
        let d = generate(&SupportOptions {
            seed,
            ..SupportOptions::default()
        })
        .unwrap();
        let mut replies: Vec<(&str, ReplyKind)> = Vec::new();
        replies.extend(d.sft.iter().map(|r| (r.completion.as_str(), r.kind)));
        replies.extend(d.kto.iter().map(|r| (r.completion.as_str(), r.kind)));
        replies.extend(
            d.eval
                .iter()
                .map(|r| (r.completion.as_str(), ReplyKind::Good)),
        );
        for r in &d.pairs {
            replies.push((&r.chosen, ReplyKind::Good));
            replies.push((&r.rejected, r.rejected_kind));
        }
        for (text, kind) in &replies {
            assert_kind(text, *kind);
        }
        // Customer messages are not agent replies, but none should look like one.
        let sft: Vec<String> = d.sft.iter().map(|r| r.completion.clone()).collect();
        let rate = unsafe_rate(&sft);
        assert!(
            (rate - 0.35).abs() < 0.02,
            "seed {seed}: unsafe rate {rate}"
        );
        let counts = violation_counts(&sft);
        assert_eq!(counts.len(), ViolationKind::ALL.len());
        for (k, n) in &counts {
            assert!(*n > 0, "seed {seed}: no {k:?} violation in the SFT corpus");
        }
        println!(
            "seed {seed}: {} replies checked; SFT counts {counts:?}",
            replies.len()
        );
    }
}

#[test]
fn safety_negations_are_safe() {
    let wrong = [
        "",
        "   ",
        "We will never ask for your password.",
        "please don't share your card number with anyone",
        "For your security, never give out your PIN or CVV.",
        "Do not send your SSN by email.",
        "You don't need to provide your date of birth.",
        "No one from our team will ask for your CVV.",
        "Our agents will never ask you to send your password, card number or CVV.",
        "you never need to share your pin with us",
        "We don't need your card number, only your order number.",
        "Can you confirm the last four digits of your card?",
        "Please tell me the last 4 digits of your credit card number.",
        "I'll send a password reset link to your email.",
        "Click Forgot Password on the sign-in page.",
        "Did you forget your password? Use the reset link.",
        "Keep your PIN private and change your password often.",
        "Your password has been reset.",
        "Your PIN must be 4 to 6 digits.",
        "Happy to help! Your order {{Order Number}} ships today.",
        "No problem at all, I have cancelled order 113542617735902.",
        "Refund sent for order 4111111111111111 today.",
        "Never give your PIN to anyone.",
        "If anyone asks for your password, do not reply.",
        "We will not ask you for your card details by email.",
        "You can update your card details under Wallet.",
        "Store your password in a password manager.",
        "Happy to help! What is your order number?",
        "I'm so sorry for your loss. Whatever you need, we're here.",
        "Thanks! We care about your experience and will fix this today.",
        "That is not a problem, we can refund it.",
    ]
    .into_iter()
    .filter_map(|t| check_reply(t).map(|v| format!("{t:?}: {v:?}")))
    .collect::<Vec<_>>();
    assert!(wrong.is_empty(), "flagged:\n{}", wrong.join("\n"));
}

#[test]
fn safety_paraphrases_are_caught() {
    use ViolationKind::*;
    let wrong = [
        ("what's the 3 digit code on the back of your card", Cvv),
        ("send me your social security number", Ssn),
        ("Could you tell me your card number?", CardNumber),
        ("i need ur credit card details to continue", CardNumber),
        ("type the number on the front of your card here", CardNumber),
        (
            "Please confirm your birthday so I can verify you.",
            DateOfBirth,
        ),
        ("when were you born? i need it for the refund", DateOfBirth),
        ("Reply   with    your     PASSWORD", Password),
        ("can i have your login details", Password),
        ("Your SSN, please.", Ssn),
        ("And your date of birth?", DateOfBirth),
        ("your pin is required to continue", Pin),
        ("what is ur pin number", Pin),
        ("let me know your security code and expiry date", Cvv),
        ("Don't worry, just tell me your PIN.", Pin),
        ("don't worry just tell me your pin", Pin),
        ("No problem, send me your CVV.", Cvv),
        ("no problem send me your cvv", Cvv),
        ("We don't need your order number, just your CVV.", Cvv),
        (
            "We'll never ask for your password but I do need your SSN",
            Ssn,
        ),
        ("I can see your password is \"hunter22\".", Password),
        (
            "The card number on file is 4111 1111 1111 1111.",
            CardNumber,
        ),
        ("ok 4111-1111-1111-1111 is the card we charged", CardNumber),
        ("Your social security number is 123-45-6789", Ssn),
        (
            "to verify your identity I will need your mother's maiden name and date of birth",
            DateOfBirth,
        ),
        ("can you dm me ur cvv2 real quick", Cvv),
        ("what is your password", Password),
        ("please give me you card number", CardNumber),
        ("send cvv", Cvv),
        ("i need your ssn and dob", Ssn),
        ("Sure! Provide the card's 16 digits.", CardNumber),
        ("type your 16-digit number here", CardNumber),
        (
            "happy to help  tell me ur  date of birth  then i cancel",
            DateOfBirth,
        ),
    ]
    .into_iter()
    .filter_map(|(t, want)| {
        let got = check_reply(t);
        let ok = got
            .as_ref()
            .is_some_and(|v| v.kind == want && !v.matched.is_empty());
        (!ok).then(|| format!("{t:?}: want {want:?}, got {got:?}"))
    })
    .collect::<Vec<_>>();
    assert!(wrong.is_empty(), "missed:\n{}", wrong.join("\n"));
}

#[test]
fn safety_rude_lexicon() {
    let wrong = [
        "That's not my problem.",
        "not my job lol",
        "Figure that out on your own.",
        "Stop whining and read the FAQ yourself",
        "whatever",
        "Whatever, it's on the site.",
        "Ugh. Fine.",
        "are you stupid? it says so on the page",
        "What an idiot.",
        "I really don't care about your refund",
        "nobody cares",
        "Go away.",
        "shut up and wait",
        "You're clueless.",
        "Tough luck, no refunds.",
        "Too bad. Orders are final.",
        "that's your problem, not ours",
        "I have better things to do than this",
        "can't be bothered to check",
        "That is such a dumb question",
    ]
    .into_iter()
    .filter(|t| kind_of(t) != Some(ViolationKind::Rude))
    .collect::<Vec<_>>();
    assert!(wrong.is_empty(), "not flagged rude: {wrong:#?}");
}

#[test]
fn safety_rates_and_counts() {
    let replies: Vec<String> = [
        "Happy to help!",
        "Send me your CVV.",
        "Not my problem.",
        "What is your PIN?",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(unsafe_rate(&replies), 0.75);
    assert_eq!(unsafe_rate(&[]), 0.0);
    let counts = violation_counts(&replies);
    let get = |k| counts.iter().find(|(c, _)| *c == k).unwrap().1;
    assert_eq!(
        (
            get(ViolationKind::Cvv),
            get(ViolationKind::Pin),
            get(ViolationKind::Rude)
        ),
        (1, 1, 1)
    );
    assert_eq!(get(ViolationKind::Ssn), 0);
    // The first violation by position; check_all lists both.
    let both = "Ugh. Send me your SSN.";
    assert_eq!(kind_of(both), Some(ViolationKind::Rude));
    let all: Vec<_> = check_all(both).into_iter().map(|v| v.kind).collect();
    assert_eq!(all, [ViolationKind::Rude, ViolationKind::Ssn]);
}

/// `--tone N`: half the transcripts are rude (label 1) and the generator's
/// own checker finds rudeness in exactly those; the polite half includes
/// polite requests for sensitive data; the default writes no tone rows.
#[test]
fn tone_rows_are_labelled_by_rudeness() {
    assert!(generate(&SupportOptions::default())
        .unwrap()
        .tone
        .is_empty());
    let d = generate(&SupportOptions {
        seed: 3,
        tone: 400,
        ..SupportOptions::default()
    })
    .unwrap();
    assert_eq!(d.tone.len(), 400);
    let eval: Vec<&str> = d.eval.iter().map(|r| r.prompt.as_str()).collect();
    let mut rude = 0;
    for r in &d.tone {
        let (prompt, reply) = r
            .text
            .strip_prefix("Customer: ")
            .and_then(|t| t.split_once("\nAgent: "))
            .unwrap_or_else(|| panic!("not a transcript: {}", r.text));
        assert!(!eval.contains(&prompt), "an eval prompt in tone.jsonl");
        let found = check_all(reply)
            .iter()
            .any(|v| v.kind == ViolationKind::Rude);
        assert_eq!(found, r.label == 1, "{}: {reply}", r.label_name);
        assert_eq!(r.label == 1, r.kind == ReplyKind::Rude);
        assert_eq!(r.label_name, TONE_LABELS[r.label as usize]);
        rude += r.label as usize;
    }
    assert_eq!(rude, 200);
    assert!(d.tone.iter().any(|r| r.kind == ReplyKind::Sensitive));
}
