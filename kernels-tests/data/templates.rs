//! engine's own templates: presets, rendering, conversation segments, their
//! JSON file in a model directory, and their Jinja equivalents.

use super::helpers::{err_text, Scratch};
use engine::data::*;

fn convo() -> Vec<Message> {
    vec![
        Message::system("Be brief."),
        Message::user("Hi"),
        Message::assistant("Hello."),
        Message::user("Bye"),
        Message::assistant("Goodbye."),
    ]
}

#[test]
fn gpt2_template_renders_prompts_and_examples() {
    let t = EngineTemplate::gpt2();
    assert_eq!(t, EngineTemplate::gpt2());
    assert_eq!(t.render_prompt(&"Hi".into()), "User: Hi\nAssistant:");
    assert_eq!(
        t.render_example(&"Hi".into(), &"Hello.".into()),
        (
            "User: Hi\nAssistant:".to_string(),
            " Hello.<|endoftext|>".to_string()
        )
    );
    let m = convo();
    assert_eq!(
        t.render_prompt(&m[..4].to_vec().into()),
        "System: Be brief.\nUser: Hi\nAssistant: Hello.<|endoftext|>\nUser: Bye\nAssistant:"
    );
    assert_eq!(
        t.render_messages(&m),
        "System: Be brief.\nUser: Hi\nAssistant: Hello.<|endoftext|>\nUser: Bye\nAssistant: Goodbye.<|endoftext|>"
    );
    // A string prompt/completion is the same as one user turn and its answer.
    let as_chat = t.render_example(
        &vec![Message::user("Hi")].into(),
        &vec![Message::assistant("Hello.")].into(),
    );
    assert_eq!(as_chat, t.render_example(&"Hi".into(), &"Hello.".into()));
}

#[test]
fn prompt_plus_completion_is_the_whole_conversation() {
    let m = convo();
    for t in [
        EngineTemplate::gpt2(),
        EngineTemplate::plain(),
        EngineTemplate::hh(),
    ] {
        for split in [2, 4] {
            let (p, c) = t.render_example(&m[..split].to_vec().into(), &m[split..].to_vec().into());
            assert_eq!(p + &c, t.render_messages(&m), "{t:?} split {split}");
        }
    }
}

#[test]
fn conversation_segments_mark_assistant_answers() {
    let t = EngineTemplate::gpt2();
    let segs = t.render_conversation(&convo());
    let trained: Vec<&str> = segs
        .iter()
        .filter(|s| s.trainable)
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(trained, [" Hello.<|endoftext|>", " Goodbye.<|endoftext|>"]);
    assert_eq!(segs.len(), 4, "adjacent pieces of one kind are merged");
    assert!(!segs[0].trainable);
    assert!(segs[0].text.ends_with("User: Hi\nAssistant:"));
}

#[test]
fn plain_template_concatenates_verbatim() {
    let t = EngineTemplate::plain();
    assert_eq!(
        t.render_example(&"The sky is".into(), &" blue.".into()),
        ("The sky is".to_string(), " blue.".to_string())
    );
    assert_eq!(t.render_prompt(&"Q: hi\nA:".into()), "Q: hi\nA:");
    let hh = EngineTemplate::hh();
    assert_eq!(
        hh.render_prompt(&vec![Message::user("q")].into()),
        "\n\nHuman: q\n\nAssistant:"
    );
}

#[test]
fn template_file_and_presets() {
    assert_eq!(TEMPLATE_FILE, "engine_template.json");
    let t = EngineTemplate {
        eos: None,
        user_prefix: "### Q: ".into(),
        ..EngineTemplate::gpt2()
    };
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["user_prefix"], "### Q: ");
    assert_eq!(json["assistant_prefix"], "Assistant:");
    assert_eq!(json["eos"], serde_json::Value::Null);
    assert_eq!(json["wrap_plain"], true);
    let dir = Scratch::new("template");
    // Without the file, the model's own tokenizer template (none here).
    assert!(matches!(
        ChatTemplate::for_model_dir(&dir).unwrap(),
        ChatTemplate::Hf(h) if h.jinja().is_none()
    ));
    t.save(&dir.join(TEMPLATE_FILE)).unwrap();
    assert_eq!(
        ChatTemplate::for_model_dir(&dir).unwrap(),
        ChatTemplate::Engine(t)
    );
    // Missing fields take the defaults; unknown ones are refused.
    let partial: EngineTemplate = serde_json::from_str(r#"{"turn_separator": "\n\n"}"#).unwrap();
    assert_eq!(partial.turn_separator, "\n\n");
    assert_eq!(partial.user_prefix, "User: ");
    assert!(serde_json::from_str::<EngineTemplate>(r#"{"user": "x"}"#).is_err());
    std::fs::write(dir.join(TEMPLATE_FILE), "{\"eos\": 3}").unwrap();
    assert!(err_text(ChatTemplate::for_model_dir(&dir)).contains(TEMPLATE_FILE));
    assert_eq!(
        EngineTemplate::preset("plain").unwrap(),
        EngineTemplate::plain()
    );
    assert_eq!(EngineTemplate::preset("hh").unwrap(), EngineTemplate::hh());
    assert!(EngineTemplate::preset("llama").is_err());
}
