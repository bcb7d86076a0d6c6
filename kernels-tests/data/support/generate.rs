//! The customer-support generator (`engine data support`): determinism,
//! counts, the trainers' loaders, held-out eval, the unsafe fraction, intent
//! coverage, length limits and variety.

use crate::data::helpers::Scratch;
use engine::data::support::{
    generate, write_splits, ReplyKind, SupportData, SupportOptions, INTENTS, MAX_MESSAGE_WORDS,
    MAX_MIXED_REPLY_WORDS, MAX_REPLY_WORDS, SPLIT_FILES, TONE_FILE,
};
use engine::data::{
    load_kto, load_preferences, load_prompts, load_sft, Content, LoadOptions, SftRecord,
};
use engine::train::sample::text_metrics::distinct_n;
use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

fn default_data() -> &'static SupportData {
    static DATA: OnceLock<SupportData> = OnceLock::new();
    DATA.get_or_init(|| generate(&SupportOptions::default()).unwrap())
}

fn small(seed: u64) -> SupportOptions {
    SupportOptions {
        seed,
        sft: 300,
        pairs: 200,
        kto: 100,
        prompts: 80,
        eval: 40,
        unsafe_fraction: 0.35,
        garbled_pairs: 0.25,
        tone: 0,
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

fn plain(c: &Content) -> &str {
    match c {
        Content::Plain(s) => s,
        Content::Chat(_) => panic!("expected a plain string"),
    }
}

#[test]
fn support_same_seed_same_bytes() {
    let (a, b) = (Scratch::new("support-det-a"), Scratch::new("support-det-b"));
    write_splits(&a, &generate(&small(7)).unwrap()).unwrap();
    write_splits(&b, &generate(&small(7)).unwrap()).unwrap();
    for f in SPLIT_FILES.iter().chain(&["manifest.json", "README.md"]) {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs with seed 7");
    }
    let other = generate(&small(8)).unwrap();
    assert_ne!(
        generate(&small(7)).unwrap().sft,
        other.sft,
        "seed is ignored"
    );
    // Each split has its own stream: more SFT rows leave the pairs alone.
    let more_sft = generate(&SupportOptions {
        sft: 500,
        ..small(7)
    })
    .unwrap();
    assert_eq!(more_sft.pairs, generate(&small(7)).unwrap().pairs);
}

#[test]
fn support_counts_and_intents() {
    let d = default_data();
    let o = SupportOptions::default();
    assert_eq!(
        [
            d.sft.len(),
            d.pairs.len(),
            d.kto.len(),
            d.prompts.len(),
            d.eval.len()
        ],
        [o.sft, o.pairs, o.kto, o.prompts, o.eval]
    );
    assert!(INTENTS.len() >= 20, "{} intents", INTENTS.len());
    let names: BTreeSet<&str> = INTENTS.iter().map(|i| i.name).collect();
    assert_eq!(names.len(), INTENTS.len(), "duplicate intent names");
    let splits: [(&str, Vec<&str>); 5] = [
        ("sft", d.sft.iter().map(|r| r.intent).collect()),
        ("pairs", d.pairs.iter().map(|r| r.intent).collect()),
        ("kto", d.kto.iter().map(|r| r.intent).collect()),
        ("prompts", d.prompts.iter().map(|r| r.intent).collect()),
        ("eval", d.eval.iter().map(|r| r.intent).collect()),
    ];
    for (split, intents) in &splits {
        let seen: BTreeSet<&str> = intents.iter().copied().collect();
        assert_eq!(seen, names, "{split} misses intents");
    }
    let distinct: HashSet<&str> = d.prompts.iter().map(|r| r.prompt.as_str()).collect();
    assert_eq!(distinct.len(), d.prompts.len(), "PPO prompts repeat");
    let distinct: HashSet<&str> = d.eval.iter().map(|r| r.prompt.as_str()).collect();
    assert_eq!(distinct.len(), d.eval.len(), "eval prompts repeat");
}

#[test]
fn support_unsafe_fraction_is_honoured() {
    for f in [0.35, 0.1, 0.6] {
        let d = generate(&SupportOptions {
            unsafe_fraction: f,
            ..SupportOptions::default()
        })
        .unwrap();
        let n = d.sft.len() as f64;
        let count = |k| d.sft.iter().filter(|r| r.kind == k).count() as f64;
        let (sens, rude) = (count(ReplyKind::Sensitive), count(ReplyKind::Rude));
        assert!(
            ((sens + rude) / n - f).abs() <= 0.02,
            "unsafe {} vs {f}",
            (sens + rude) / n
        );
        assert!(
            (sens / (sens + rude) - 2.0 / 3.0).abs() < 0.02,
            "sensitive share {sens}/{rude}"
        );
    }
    let d = default_data();
    let rude = d
        .pairs
        .iter()
        .filter(|r| r.rejected_kind == ReplyKind::Rude)
        .count();
    // A quarter of the pairs reject a garbled reply; of the rest a third are rude.
    assert!((rude as f64 / d.pairs.len() as f64 - 0.75 / 3.0).abs() < 0.02);
    let garbled = d
        .pairs
        .iter()
        .filter(|r| r.rejected_kind == ReplyKind::Garbled)
        .count();
    assert_eq!(garbled, (d.pairs.len() as f64 * 0.25).round() as usize);
    assert!(d.pairs.iter().all(|r| r.rejected_kind != ReplyKind::Good));
    let good = d.kto.iter().filter(|r| r.label).count();
    assert_eq!(good, d.kto.len() / 2);
    assert!(d.kto.iter().all(|r| r.label == (r.kind == ReplyKind::Good)));
    assert!(generate(&SupportOptions {
        unsafe_fraction: 1.5,
        ..small(0)
    })
    .is_err());
}

#[test]
fn support_eval_is_held_out() {
    for seed in [0, 1] {
        let d = if seed == 0 {
            default_data().clone()
        } else {
            generate(&small(1)).unwrap()
        };
        let training: HashSet<&str> = d
            .sft
            .iter()
            .flat_map(|r| [&r.prompt, &r.completion])
            .chain(
                d.pairs
                    .iter()
                    .flat_map(|r| [&r.prompt, &r.chosen, &r.rejected]),
            )
            .chain(d.kto.iter().flat_map(|r| [&r.prompt, &r.completion]))
            .chain(d.prompts.iter().map(|r| &r.prompt))
            .map(String::as_str)
            .collect();
        for r in &d.eval {
            assert!(
                !training.contains(r.prompt.as_str()),
                "eval prompt in training: {}",
                r.prompt
            );
        }
    }
}

#[test]
fn support_lengths_within_limits() {
    for seed in [0, 3] {
        let d = if seed == 0 {
            default_data().clone()
        } else {
            generate(&SupportOptions {
                seed,
                ..SupportOptions::default()
            })
            .unwrap()
        };
        let prompts = d
            .sft
            .iter()
            .map(|r| &r.prompt)
            .chain(d.pairs.iter().map(|r| &r.prompt))
            .chain(d.kto.iter().map(|r| &r.prompt))
            .chain(d.prompts.iter().map(|r| &r.prompt))
            .chain(d.eval.iter().map(|r| &r.prompt));
        for p in prompts {
            assert!(
                words(p) <= MAX_MESSAGE_WORDS && !p.trim().is_empty(),
                "message {p:?}"
            );
        }
        let replies = d
            .sft
            .iter()
            .map(|r| &r.completion)
            .chain(d.pairs.iter().map(|r| &r.chosen))
            .chain(d.kto.iter().map(|r| &r.completion))
            .chain(d.eval.iter().map(|r| &r.completion));
        for r in replies {
            assert!(
                words(r) <= MAX_REPLY_WORDS && !r.trim().is_empty(),
                "reply {r:?}"
            );
        }
        for r in d.pairs.iter().map(|r| &r.rejected) {
            assert!(
                words(r) <= MAX_MIXED_REPLY_WORDS && !r.trim().is_empty(),
                "rejected reply {r:?}"
            );
        }
    }
}

#[test]
fn support_good_replies_are_varied() {
    let d = default_data();
    let good: Vec<String> = d
        .sft
        .iter()
        .filter(|r| r.kind == ReplyKind::Good)
        .map(|r| r.completion.clone())
        .collect();
    let eval: Vec<String> = d.eval.iter().map(|r| r.completion.clone()).collect();
    let eval64 = &eval[..64];
    let (all, ev, ev64) = (
        distinct_n(&good, 2),
        distinct_n(&eval, 2),
        distinct_n(eval64, 2),
    );
    let messages: Vec<String> = d.prompts.iter().map(|r| r.prompt.clone()).collect();
    println!(
        "distinct-2: good SFT replies {all:.3} ({} replies), eval references {ev:.3} (128), \
         first 64 {ev64:.3}; PPO prompts {:.3}",
        good.len(),
        distinct_n(&messages, 2)
    );
    let distinct: HashSet<&String> = good.iter().collect();
    println!(
        "distinct good SFT replies: {} of {}",
        distinct.len(),
        good.len()
    );
    assert!(
        ev64 > 0.4,
        "eval references too repetitive: distinct-2 {ev64}"
    );
    assert!(
        distinct.len() * 2 > good.len(),
        "good replies repeat too much"
    );
    let all_texts = d.texts().count();
    assert_eq!(all_texts, 2 * 4000 + 3 * 3000 + 2 * 2000 + 1000 + 2 * 128);
}

#[test]
fn support_splits_load_through_the_trainers_loaders() {
    let dir = Scratch::new("support-load");
    let d = generate(&small(2)).unwrap();
    let written = write_splits(&dir, &d).unwrap();
    assert_eq!(written.len(), 7);
    assert!(written.iter().all(|p| p.is_file()));
    let opts = LoadOptions::default();

    let sft = load_sft(&dir.join("sft.jsonl"), &opts).unwrap();
    assert_eq!(sft.len(), d.sft.len());
    for (row, want) in sft.rows.iter().zip(&d.sft) {
        let SftRecord::PromptCompletion { prompt, completion } = &row.record else {
            panic!("{}: not prompt/completion", row.origin);
        };
        assert_eq!(
            (plain(prompt), plain(completion)),
            (&*want.prompt, &*want.completion)
        );
    }
    let pairs = load_preferences(&dir.join("pairs.jsonl"), &opts).unwrap();
    assert_eq!(pairs.len(), d.pairs.len());
    for (row, want) in pairs.rows.iter().zip(&d.pairs) {
        let r = &row.record;
        assert_eq!(plain(&r.prompt), want.prompt);
        assert_eq!(
            (plain(&r.chosen), plain(&r.rejected)),
            (&*want.chosen, &*want.rejected)
        );
    }
    let kto = load_kto(&dir.join("kto.jsonl"), &opts).unwrap();
    assert_eq!(kto.len(), d.kto.len());
    for (row, want) in kto.rows.iter().zip(&d.kto) {
        assert_eq!(row.record.label, want.label);
        assert_eq!(plain(&row.record.completion), want.completion);
    }
    let prompts = load_prompts(&dir.join("prompts.jsonl"), &opts).unwrap();
    assert_eq!(prompts.len(), d.prompts.len());
    let eval_as_prompts = load_prompts(&dir.join("eval.jsonl"), &opts).unwrap();
    let eval = load_sft(&dir.join("eval.jsonl"), &opts).unwrap();
    assert_eq!(
        (eval.len(), eval_as_prompts.len()),
        (d.eval.len(), d.eval.len())
    );

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rows"]["sft"], 300);
    assert_eq!(manifest["options"]["seed"], 2);
    assert_eq!(manifest["intents"].as_array().unwrap().len(), INTENTS.len());
    assert!(manifest["licence"].as_str().unwrap().contains("Bitext"));
}

#[test]
fn support_cli_writes_the_files() {
    let dir = Scratch::new("support-cli");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "data", "support", "--seed", "5", "--sft", "50", "--pairs", "30",
        ])
        .args([
            "--kto",
            "20",
            "--prompts",
            "25",
            "--eval",
            "10",
            "--unsafe-fraction",
            "0.4",
            "--garbled-pairs",
            "0.5",
            "--tone",
            "30",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sft.jsonl (50 rows)"), "{stdout}");
    assert!(stdout.contains("tone.jsonl (30 rows)"), "{stdout}");
    let want = generate(&SupportOptions {
        seed: 5,
        sft: 50,
        pairs: 30,
        kto: 20,
        prompts: 25,
        eval: 10,
        unsafe_fraction: 0.4,
        garbled_pairs: 0.5,
        tone: 30,
    })
    .unwrap();
    let lib_dir = Scratch::new("support-cli-lib");
    write_splits(&lib_dir, &want).unwrap();
    for f in SPLIT_FILES.iter().chain(&[TONE_FILE]) {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(lib_dir.join(f)).unwrap(),
            "{f}: CLI and library differ"
        );
    }
}
