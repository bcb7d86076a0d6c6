//! `well_formed_rate` (data::support::fluency): every reply the generator
//! writes is fully well formed, for several seeds and every split; the
//! broken replies the demo's first policy wrote are not; cut-off replies,
//! swapped placeholders and silence are judged as documented.

use engine::data::support::fluency::{SentenceCount, WellFormed};
use engine::data::support::{generate, ReplyKind, SupportData, SupportOptions, MAX_REPLY_WORDS};

/// The default data of seeds 1, 2 and 7.
fn default_data_for_seeds() -> impl Iterator<Item = (u64, SupportData)> {
    [1, 2, 7].into_iter().map(|seed| {
        let d = generate(&SupportOptions {
            seed,
            ..SupportOptions::default()
        })
        .unwrap();
        (seed, d)
    })
}

#[test]
fn fluency_every_generated_reply_is_well_formed() {
    let judge = WellFormed::support();
    for (seed, d) in default_data_for_seeds() {
        let mut replies: Vec<&str> = Vec::new();
        replies.extend(d.sft.iter().map(|r| r.completion.as_str()));
        replies.extend(d.kto.iter().map(|r| r.completion.as_str()));
        replies.extend(d.eval.iter().map(|r| r.completion.as_str()));
        replies.extend(d.pairs.iter().map(|r| r.chosen.as_str()));
        replies.extend(
            d.pairs
                .iter()
                .filter(|r| r.rejected_kind != ReplyKind::Garbled)
                .map(|r| r.rejected.as_str()),
        );
        for r in &replies {
            let n = judge.judge(r);
            assert_eq!(n.well_formed, n.total, "seed {seed}: {r:?} judged {n:?}");
            assert!(n.total >= 1);
        }
        assert_eq!(judge.rate(replies.iter().copied()), 1.0);
    }
}

/// The reward pairs' garbled replies (one sentence spliced, cut or
/// stuttered) all fail the judge, and each keeps every other sentence whole.
#[test]
fn fluency_garbled_pair_replies_are_not_well_formed() {
    let judge = WellFormed::support();
    for (seed, d) in default_data_for_seeds() {
        let garbled: Vec<&str> = d
            .pairs
            .iter()
            .filter(|r| r.rejected_kind == ReplyKind::Garbled)
            .map(|r| r.rejected.as_str())
            .collect();
        assert!(
            garbled.len() > 500,
            "seed {seed}: {} garbled",
            garbled.len()
        );
        for r in &garbled {
            let n = judge.judge(r);
            assert!(n.well_formed < n.total, "seed {seed}: {r:?} judged {n:?}");
            assert!(
                n.total - n.well_formed <= 2,
                "more than one sentence broken: {r:?}"
            );
            assert!(r.split_whitespace().count() <= MAX_REPLY_WORDS, "{r:?}");
        }
        let distinct: std::collections::HashSet<&&str> = garbled.iter().collect();
        assert!(
            distinct.len() * 10 >= garbled.len() * 9,
            "garbled replies repeat"
        );
    }
}

#[test]
fn fluency_broken_replies_are_not_well_formed() {
    let judge = WellFormed::support();
    // What the first default policy wrote, before and after PPO (issue 17).
    for broken in [
        "Hello there, happy to}}; is no cost.",
        "Certainly! I'llGlad to help. I checked order {{Order Number}} for you; it was will never to help.",
        "I'll gladly help you check your invoice {{Invoice Number}}. I apologise request",
    ] {
        let n = judge.judge(broken);
        assert!(n.well_formed < n.total, "{broken:?} judged {n:?}");
    }
    let n = judge.judge("Certainly! I'llGlad to help.");
    assert_eq!(
        n,
        SentenceCount {
            well_formed: 1,
            total: 2
        }
    );
    assert_eq!(judge.rate(["Certainly! I'llGlad to help."]), 0.5);
}

#[test]
fn fluency_placeholders_cut_offs_and_silence() {
    let judge = WellFormed::support();
    let whole = |s: &str| {
        let n = judge.judge(s);
        n.well_formed == n.total
    };
    // A placeholder in another's slot is still a sentence; spacing is free.
    assert!(whole(
        "Let me help you cancel your order {{Invoice Number}}."
    ));
    assert!(whole(
        "Certainly!   Let me help you\ncancel your order {{Order Number}}."
    ));
    // A reply cut by the token limit: its start is fine, a wrong start is not.
    assert!(whole("Certainly! Let me help you cancel your order {{Ord"));
    assert!(whole("Certainly! Let me help you canc"));
    assert!(!whole("Certainly! Let me help you xyz"));
    // Silence is not a reply; nothing to judge across replies rates 1.
    assert_eq!(
        judge.judge(""),
        SentenceCount {
            well_formed: 0,
            total: 1
        }
    );
    assert_eq!(
        judge.judge("  \n"),
        SentenceCount {
            well_formed: 0,
            total: 1
        }
    );
    assert_eq!(judge.rate([]), 1.0);
    // A judge over other pieces.
    let own = WellFormed::new(&["Hi there! How are you?".to_string()]);
    assert_eq!(own.rate(["How are you? Hi there!"]), 1.0);
    assert_eq!(own.rate(["How are you there!"]), 0.0);
}
