//! The `engine` binary's model commands against the transformers fixtures,
//! and their errors on bad input.

use super::parity::{fixture, ids, root};
use std::process::Command;

pub fn engine(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub fn model_dir(name: &str) -> String {
    root()
        .join("models/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn generate_json_gives_transformers_greedy_tokens() {
    let (_, json, _) = fixture("gpt2-tiny");
    let g = &json["generation"];
    let text = g["prompt_texts"][0].as_str().unwrap();
    let (ok, out, err) = engine(&[
        "generate",
        "--model",
        &model_dir("gpt2-tiny"),
        "--prompt",
        text,
        "--max-new-tokens",
        "32",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids(&v["prompt_ids"]), ids(&g["prompts"][0]));
    assert_eq!(ids(&v["new_ids"]), ids(&g["new_tokens"][0]));
    assert_eq!(
        v["text"].as_str().unwrap(),
        g["new_text"][0].as_str().unwrap()
    );
}

#[test]
fn perplexity_json_matches_transformers_loss() {
    for name in ["gpt2-tiny", "neox-parallel"] {
        let (_, json, _) = fixture(name);
        let scratch = crate::common::Scratch::new(&format!("ppl-{name}"));
        let path = scratch.path("text.txt");
        std::fs::write(&path, json["ppl_text"].as_str().unwrap()).unwrap();
        let (ok, out, err) = engine(&[
            "perplexity",
            "--model",
            &model_dir(name),
            "--text",
            path.to_str().unwrap(),
            "--json",
        ]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            v["tokens"].as_u64().unwrap() as usize,
            ids(&json["ppl_ids"]).len()
        );
        let (got, want) = (
            v["mean_nll"].as_f64().unwrap(),
            json["ppl_mean_nll"].as_f64().unwrap(),
        );
        assert!((got - want).abs() < 1e-5, "{name}: {got} vs {want}");
        assert!((v["ppl"].as_f64().unwrap() - want.exp()).abs() < 1e-3);
    }
}

#[test]
fn info_reports_parameters_and_memory() {
    let (ok, out, err) = engine(&["info", "--model", &model_dir("neox-parallel")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("GptNeox") && out.contains("parameters     124672") && out.contains("f16"),
        "{out}"
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let (ok, _, err) = engine(&["info", "--model", "/nonexistent-model-dir"]);
    assert!(
        !ok && err.contains("/nonexistent-model-dir/config.json"),
        "{err}"
    );
    let (ok, _, err) = engine(&[
        "generate",
        "--model",
        &model_dir("gpt2-tiny"),
        "--prompt",
        "The",
        "--max-new-tokens",
        "500",
    ]);
    assert!(!ok && err.contains("context of 64"), "{err}");
    let (ok, _, err) = engine(&[
        "generate",
        "--model",
        &model_dir("gpt2-tiny"),
        "--prompt",
        "The",
        "--greedy",
        "--top-k",
        "5",
    ]);
    assert!(!ok && err.contains("--greedy"), "{err}");
    // A checkpoint whose config disagrees with its tensors names the file and tensor.
    let dir = crate::common::Scratch::new("bad-model");
    let src = root().join("models/fixtures/gpt2-tiny");
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(src.join("config.json"))
        .unwrap()
        .replace("\"n_positions\": 64", "\"n_positions\": 65");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let (ok, _, err) = engine(&["info", "--model", dir.to_str().unwrap()]);
    assert!(
        !ok && err.contains("model.safetensors")
            && err.contains("transformer.wpe.weight")
            && err.contains("[64, 48]"),
        "{err}"
    );
}

#[test]
fn quantized_bases_and_adapters_from_the_cli() {
    let (ok, out, err) = engine(&[
        "info",
        "--model",
        &model_dir("gpt2-tiny"),
        "--quant",
        "nf4",
        "--lora-r",
        "8",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("nf4 codes")
            && out.contains("LoRA adapters")
            && out.contains("bytes per quantized weight"),
        "{out}"
    );
    let adapter = model_dir("gpt2-tiny-lora");
    let (ok, out, err) = engine(&[
        "generate",
        "--model",
        &model_dir("gpt2-tiny"),
        "--quant",
        "int8",
        "--adapter",
        &adapter,
        "--prompt",
        "The",
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("new_ids"), "{out}");
    let (ok, _, err) = engine(&["info", "--model", &model_dir("gpt2-tiny"), "--quant", "fp4"]);
    assert!(!ok && err.contains("fp4"), "{err}");
}

#[test]
fn info_and_chat_have_json_output() {
    let (ok, out, err) = engine(&["info", "--model", &model_dir("neox-parallel"), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (
            v["parameters"].as_u64(),
            v["vocab"].as_u64(),
            v["tokenizer_vocab"].as_u64()
        ),
        (Some(124672), Some(192), Some(160))
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "chat",
            "--model",
            &model_dir("gpt2-tiny"),
            "--max-new-tokens",
            "3",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nthe sea\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one JSON line per turn");
    assert_eq!(lines[1]["user"], "the sea");
    assert_eq!(lines[1]["new_ids"].as_array().unwrap().len(), 3);
}

/// Runs `engine chat` on gpt2-tiny with `input` piped in: (stdout, stderr).
fn chat(extra: &[&str], input: &str) -> (String, String) {
    let mut args = vec![
        "chat".to_string(),
        "--model".to_string(),
        model_dir("gpt2-tiny"),
        "--max-new-tokens".to_string(),
        "3".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(out.status.success(), "{e}");
    (o, e)
}

#[test]
fn chat_commands_are_never_sent_to_the_model() {
    let input =
        "/help\n/system Be brief.\nhello\n/history\n/bogus\n/reset\n/history\n/exit\nnever read\n";
    // JSON mode: one reply line, for the one user turn; the rest on stderr.
    let (out, err) = chat(&["--json"], input);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["user"], "hello");
    assert!(!lines[0]["reply"]
        .as_str()
        .unwrap()
        .contains("<|endoftext|>"));
    assert!(
        err.contains("engine chat:") && err.contains("gpt2-tiny"),
        "banner: {err}"
    );
    assert!(
        err.contains("/reset") && err.contains("/system TEXT"),
        "{err}"
    );
    assert!(err.contains("unknown command /bogus"), "{err}");
    // The history window holds the system text and the turn, then nothing.
    assert!(err.contains("history: 1 turns"), "{err}");
    assert!(err.contains("Be brief.\nUser: hello\nAssistant:"), "{err}");
    assert!(err.contains("history: 0 turns"), "{err}");
    // Interactive mode: the same on stdout, after the banner.
    let (out, _) = chat(&[], "/help\n/exit\n");
    assert!(out.starts_with("engine chat: "), "{out}");
    assert!(out.contains("commands (never sent to the model)"), "{out}");
}
