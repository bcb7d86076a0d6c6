//! HF chat templates: engine's Jinja renderer against transformers'
//! `apply_chat_template(..., tokenize=False)` byte for byte (fixtures from
//! kernels-tests/fixtures/make_template_fixtures.py), TRL's prompt/completion
//! split and SFT segments through a model's template, TRL's plain
//! concatenation for string data, and engine templates' Jinja equivalents.

use engine::data::jinja::{python_json, strftime_utc, JinjaTemplate};
use engine::data::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn style(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels-tests/fixtures/templates")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tokens(doc: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(doc["tokens"].clone()).unwrap()
}

fn hf(name: &str) -> ChatTemplate {
    let doc = style(name);
    let src = doc["chat_template"].as_str().unwrap();
    ChatTemplate::Hf(HfTemplate::new(Some(src), tokens(&doc)).unwrap())
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

fn check_style(name: &str) {
    let doc = style(name);
    let t = JinjaTemplate::new(doc["chat_template"].as_str().unwrap(), tokens(&doc)).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for (i, case) in cases.iter().enumerate() {
        let gen = case["add_generation_prompt"].as_bool().unwrap();
        let got = t.render(&messages(&case["messages"]), gen);
        match (&case["expected"], &case["error"]) {
            (Value::String(want), _) => {
                assert_eq!(
                    &got.unwrap(),
                    want,
                    "{name} case {i} (generation prompt {gen})"
                )
            }
            (_, Value::String(err)) => {
                let e = format!("{:#}", got.unwrap_err());
                assert!(e.contains(err.as_str()), "{name} case {i}: {e}");
            }
            _ => panic!("{name} case {i}: no expectation"),
        }
    }
}

#[test]
fn chatml_renders_as_transformers_does() {
    check_style("chatml");
}

#[test]
fn llama2_inst_renders_as_transformers_does() {
    check_style("llama2");
}

#[test]
fn zephyr_renders_as_transformers_does() {
    check_style("zephyr");
}

#[test]
fn jinja_features_of_hf_templates_render_as_transformers_does() {
    check_style("features");
}

#[test]
fn conversational_prompt_and_completion_split_as_trl_does() {
    let t = hf("chatml");
    let prompt: Content = vec![Message::system("Be brief."), Message::user("Hi")].into();
    let completion: Content = vec![Message::assistant("Hello.")].into();
    let (p, c) = t.render_example(&prompt, &completion).unwrap();
    assert_eq!(
        p,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(c, "Hello.<|im_end|>\n");
    assert_eq!(t.render_prompt(&prompt).unwrap(), p);
    // Llama-2's template refuses two user turns in a row, and says so.
    let bad: Content = vec![Message::user("a"), Message::user("b")].into();
    let e = format!("{:#}", hf("llama2").render_prompt(&bad).unwrap_err());
    assert!(e.contains("must alternate"), "{e}");
}

#[test]
fn sft_segments_train_on_assistant_turns_of_the_models_template() {
    for name in ["chatml", "llama2", "zephyr"] {
        let t = hf(name);
        let m = vec![
            Message::system("Sys."),
            Message::user("Hi"),
            Message::assistant("Hello."),
            Message::user("Bye"),
            Message::assistant("Goodbye."),
        ];
        let segs = t.render_conversation(&m).unwrap();
        let whole: String = segs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(whole, t.render_messages(&m).unwrap(), "{name}");
        let trained: Vec<&str> = segs
            .iter()
            .filter(|s| s.trainable)
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(trained.len(), 2, "{name}: {segs:?}");
        assert!(
            trained[0].contains("Hello.") && !trained[0].contains("Hi"),
            "{name}"
        );
        assert!(
            trained[1].contains("Goodbye.") && !trained[1].contains("Bye<"),
            "{name}"
        );
    }
}

#[test]
fn string_data_is_concatenated_with_eos_and_no_wrapper() {
    let t = hf("chatml");
    assert_eq!(
        t.render_example(&"The sky is".into(), &" blue.".into())
            .unwrap(),
        ("The sky is".to_string(), " blue.<|im_end|>".to_string())
    );
    // Already ending with EOS: not doubled.
    assert_eq!(
        t.render_example(&"Q".into(), &" A<|im_end|>".into())
            .unwrap()
            .1,
        " A<|im_end|>"
    );
    assert_eq!(t.render_prompt(&"Q: hi\nA:".into()).unwrap(), "Q: hi\nA:");
    // No chat template: strings still work, messages say what is missing.
    let bare = ChatTemplate::Hf(HfTemplate::new(None, BTreeMap::new()).unwrap());
    assert_eq!(
        bare.render_example(&"a".into(), &"b".into()).unwrap().1,
        "b"
    );
    let e = format!(
        "{:#}",
        bare.render_prompt(&vec![Message::user("x")].into())
            .unwrap_err()
    );
    assert!(
        e.contains("chat_template") && e.contains("--template"),
        "{e}"
    );
    // Mixed kinds are refused.
    assert!(t
        .render_example(&"a".into(), &vec![Message::assistant("b")].into())
        .is_err());
}

#[test]
fn engine_templates_have_exact_jinja_equivalents() {
    let convos = [
        vec![Message::user("Hi")],
        vec![
            Message::system("Be brief."),
            Message::user("Hi \"there\"\n"),
            Message::assistant("Hello."),
            Message::user("Bye"),
            Message::assistant("Goodbye."),
        ],
        vec![],
    ];
    for e in [
        EngineTemplate::gpt2(),
        EngineTemplate::plain(),
        EngineTemplate::hh(),
        EngineTemplate::support(),
    ] {
        let j = JinjaTemplate::new(&e.to_jinja(), BTreeMap::new()).unwrap();
        for m in &convos {
            assert_eq!(j.render(m, false).unwrap(), e.render_messages(m), "{e:?}");
            assert_eq!(
                j.render(m, true).unwrap(),
                e.render_prompt(&m.clone().into()),
                "{e:?}"
            );
        }
        assert_eq!(
            ChatTemplate::Engine(e.clone()).jinja_source(),
            Some(e.to_jinja())
        );
    }
}

#[test]
fn model_dirs_give_their_template_and_special_tokens() {
    let dir = super::helpers::Scratch::new("tmpl");
    let doc = style("zephyr");
    let cfg = serde_json::json!({
        "chat_template": doc["chat_template"],
        "eos_token": {"content": "</s>", "lstrip": false},
        "bos_token": "<s>",
    });
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    let t = ChatTemplate::resolve(None, Ok(&dir)).unwrap();
    assert_eq!(t, hf("zephyr"));
    assert_eq!(
        t.render_example(&"a".into(), &"b".into()).unwrap().1,
        "b</s>"
    );
    // chat_template.jinja (transformers' separate file) wins; --template
    // .jinja files render with the model's tokens; presets stay engine's.
    std::fs::write(dir.join("chat_template.jinja"), "{{ eos_token }}").unwrap();
    let t = ChatTemplate::for_model_dir(&dir).unwrap();
    assert_eq!(t.render_messages(&[]).unwrap(), "</s>");
    let file = dir.join("x.jinja");
    std::fs::write(&file, "{{ bos_token }}{{ messages | length }}").unwrap();
    let t = ChatTemplate::resolve(Some(file.to_str().unwrap()), Ok(&dir)).unwrap();
    assert_eq!(t.render_messages(&[Message::user("q")]).unwrap(), "<s>1");
    assert_eq!(
        ChatTemplate::resolve(Some("hh"), Ok(&dir)).unwrap(),
        ChatTemplate::hh()
    );
    std::fs::write(dir.join("chat_template.jinja"), "{% if %}").unwrap();
    assert!(ChatTemplate::for_model_dir(&dir).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn strftime_now_and_tojson_follow_python() {
    // 2024-02-29 13:05:09 UTC, a Thursday.
    let t = 1_709_211_909;
    assert_eq!(
        strftime_utc("%d %b %Y, %A %B %j %H:%M:%S %I%p %y %%", t).unwrap(),
        "29 Feb 2024, Thursday February 060 13:05:09 01PM 24 %"
    );
    assert!(strftime_utc("%Q", t).is_err());
    let v = serde_json::json!({"a": [1, 2.5, "é"], "b": {}});
    assert_eq!(python_json(&v, None), r#"{"a": [1, 2.5, "é"], "b": {}}"#);
    assert_eq!(
        python_json(&v, Some(2)),
        "{\n  \"a\": [\n    1,\n    2.5,\n    \"é\"\n  ],\n  \"b\": {}\n}"
    );
}
