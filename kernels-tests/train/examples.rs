//! The end-to-end examples under `examples/<name>/run.sh` (not run here: they
//! take minutes): each is executable, strict (`set -euo pipefail`), has a
//! README, and calls only `engine` subcommands and flags that exist, checked
//! against `engine --help` and `engine <sub> --help`.

use super::root;
use std::collections::BTreeSet;
use std::process::Command;

const EXAMPLES: &[&str] = &[
    "imdb_sentiment",
    "hh_rlhf_reward",
    "continue_in_trl",
    "support_detox",
];

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .expect("running engine");
    assert!(out.status.success(), "engine {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Subcommand names: the first word of each line of the "Commands:" section.
fn subcommands() -> BTreeSet<String> {
    let text = help(&["--help"]);
    let section = text
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section in engine --help");
    section
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `--flag` a (nested) subcommand's help names.
fn flags_of(sub: &[String]) -> BTreeSet<String> {
    let mut args: Vec<&str> = sub.iter().map(String::as_str).collect();
    args.push("--help");
    help(&args)
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '.']).to_string())
        .collect()
}

/// (subcommand path, flags) of each engine call in a shell script: the
/// lower-case words after `engine` or `--` (`data support`), then the
/// `--flags` up to the end of the command.
fn engine_calls(script: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let joined = script.replace("\\\n", " ");
    let mut calls = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let next = words.get(i + 1).copied().unwrap_or("");
            let is_call = (*w == "engine" || *w == "--")
                && next.chars().next().is_some_and(|c| c.is_ascii_lowercase());
            if !is_call {
                continue;
            }
            let is_word = |w: &&str| w.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            let path: Vec<String> = words[i + 1..]
                .iter()
                .take_while(|w| is_word(w) && !w.starts_with('-'))
                .map(|w| w.to_string())
                .collect();
            let flags = words[i + 1 + path.len()..]
                .iter()
                .take_while(|w| !matches!(**w, "|" | ">" | ">>" | ";" | "&&" | "||"))
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| w.split('=').next().unwrap().to_string())
                .collect();
            calls.push((path, flags));
        }
    }
    calls
}

#[test]
fn example_scripts_use_existing_commands() {
    let subs = subcommands();
    assert!(subs.contains("train-ppo"), "{subs:?}");
    for name in EXAMPLES {
        let dir = root().join("examples").join(name);
        let path = dir.join("run.sh");
        assert!(dir.join("README.md").is_file(), "{name}: no README.md");
        let script = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            script.starts_with("#!/usr/bin/env bash"),
            "{name}: no bash shebang"
        );
        assert!(script.contains("set -euo pipefail"), "{name}: not strict");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{name}/run.sh is not executable");
        }
        let calls = engine_calls(&script);
        assert!(calls.len() >= 4, "{name}: found only {calls:?}");
        for (path, flags) in calls {
            let sub = path.join(" ");
            assert!(
                subs.contains(&path[0]),
                "{name}: `engine {sub}` is no subcommand"
            );
            let known = flags_of(&path);
            for f in flags {
                assert!(known.contains(&f), "{name}: `engine {sub}` has no {f}");
            }
        }
    }
}

#[test]
fn engine_calls_are_parsed_across_continuations() {
    let s = "# engine nothing\nstep a engine train-sft --model m \\\n  --steps 3 > log\n\
             cargo run --release -- eval --data x | tee y --not-a-flag\n\
             engine data support --tone 4\n";
    let calls = engine_calls(s);
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        calls,
        vec![
            (words(&["train-sft"]), words(&["--model", "--steps"])),
            (words(&["eval"]), words(&["--data"])),
            (words(&["data", "support"]), words(&["--tone"])),
        ]
    );
}
