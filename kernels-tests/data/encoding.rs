//! Tokenized examples with the real GPT-2 tokenizer: completion-only masks,
//! conversations, truncation and the over-long-prompt error.

use super::helpers::{decode, err_text, fixture, gpt2, ids};
use engine::data::*;

const EOS: i32 = 50256;

fn row<T>(record: T, line: usize) -> Row<T> {
    Row {
        origin: Origin {
            file: std::path::Path::new("mem.jsonl").into(),
            line,
        },
        record,
    }
}

fn sft(prompt: &str, completion: &str) -> Row<SftRecord> {
    row(
        SftRecord::PromptCompletion {
            prompt: prompt.into(),
            completion: completion.into(),
        },
        7,
    )
}

#[test]
fn encodes_like_the_gpt2_tokenizer() {
    let t = ChatTemplate::gpt2();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(1024));
    assert_eq!(enc.encode_text("Hello world").unwrap(), [15496, 995]);
    assert_eq!(enc.encode_text("<|endoftext|>").unwrap(), [EOS]);
    assert_eq!(pad_id(gpt2()), Some(EOS));
}

#[test]
fn sft_completion_only_mask() {
    let t = ChatTemplate::gpt2();
    let mut enc = Encoder::new(gpt2(), &t, Truncation::truncate(1024));
    let ex = enc.sft(&sft("What is 2+2?", "4.")).unwrap();
    let p = ids("User: What is 2+2?\nAssistant:");
    let c = ids(" 4.<|endoftext|>");
    assert_eq!(ex.ids, [p.clone(), c.clone()].concat());
    assert_eq!(*ex.ids.last().unwrap(), EOS);
    assert_eq!(ex.loss_mask, [vec![0; p.len()], vec![1; c.len()]].concat());
    enc.completion_only = false;
    let all = enc.sft(&sft("What is 2+2?", "4.")).unwrap();
    assert_eq!(all.ids, ex.ids);
    assert!(all.loss_mask.iter().all(|&m| m == 1));
}

#[test]
fn sft_fixture_rows_text_and_conversation() {
    let d = load_sft(&fixture("sft.jsonl"), &LoadOptions::default()).unwrap();
    let t = ChatTemplate::gpt2();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(1024));
    let text = enc.sft(&d.rows[1]).unwrap();
    // TRL's SFTTrainer appends EOS to a text (fixtures/trl/sft_tokens.json).
    assert_eq!(text.ids, ids("Just some text to learn.<|endoftext|>"));
    assert!(text.loss_mask.iter().all(|&m| m == 1));
    // Conversation: only the assistant answers are trained.
    let conv = enc.sft(&d.rows[2]).unwrap();
    assert_eq!(
        decode(&conv.ids),
        t.render_conversation(&match &d.rows[2].record {
            SftRecord::Messages(m) => m.clone(),
            _ => panic!(),
        })
        .unwrap()
        .into_iter()
        .map(|s| s.text)
        .collect::<String>()
    );
    let trained: Vec<i32> = conv
        .ids
        .iter()
        .zip(&conv.loss_mask)
        .filter(|(_, &m)| m == 1)
        .map(|(&i, _)| i)
        .collect();
    assert_eq!(
        decode(&trained),
        " Hello.<|endoftext|> Goodbye.<|endoftext|>"
    );
    // Conversational prompt/completion.
    let chat = enc.sft(&d.rows[3]).unwrap();
    let n = ids("User: Capital of France?\nAssistant:").len();
    assert_eq!(decode(&chat.ids[n..]), " Paris.<|endoftext|>");
    assert_eq!(
        chat.loss_mask.iter().sum::<i32>() as usize,
        chat.ids.len() - n
    );
}

#[test]
fn truncation_prompt_from_the_left_completion_from_the_right() {
    let t = ChatTemplate::plain();
    let prompt = "one two three four five six seven eight";
    let completion = " nine ten eleven twelve";
    let (p, c) = (ids(prompt), ids(completion));
    assert_eq!((p.len(), c.len()), (8, 4));
    let mut tr = Truncation::truncate(9);
    tr.max_prompt_len = Some(5);
    let enc = Encoder::new(gpt2(), &t, tr);
    let ex = enc.sft(&sft(prompt, completion)).unwrap();
    assert_eq!(ex.ids, [&p[3..], &c[..4]].concat());
    assert_eq!(ex.loss_mask, [vec![0; 5], vec![1; 4]].concat());
    // Without max_prompt_len the prompt may take all but one token.
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(6));
    let ex = enc.sft(&sft(prompt, completion)).unwrap();
    assert_eq!(ex.ids, [&p[3..], &c[..1]].concat());
    let pe = enc
        .preference(&row(
            PreferenceRecord {
                prompt: prompt.into(),
                chosen: completion.into(),
                rejected: " no".into(),
            },
            1,
        ))
        .unwrap();
    assert_eq!(
        (pe.prompt_ids.as_slice(), pe.chosen_ids.as_slice()),
        (&p[3..], &c[..1])
    );
    assert_eq!(pe.rejected_ids, ids(" no"));
    let pr = enc
        .prompt(&row(
            PromptRecord {
                prompt: prompt.into(),
            },
            1,
        ))
        .unwrap();
    assert_eq!(
        pr.prompt_ids,
        p[2..],
        "a generation prompt may fill max_len"
    );
}

#[test]
fn over_long_prompts_and_completions_fail_naming_the_row() {
    let t = ChatTemplate::plain();
    let enc = Encoder::new(gpt2(), &t, Truncation::strict(6));
    let e = err_text(enc.sft(&sft("one two three four five six seven eight", " nine")));
    assert!(
        e.contains("mem.jsonl:7: prompt of 8 tokens is longer than the context: at most 5 prompt tokens (max_len 6)"),
        "{e}"
    );
    let e = err_text(enc.sft(&sft("one two", " three four five six seven")));
    assert!(
        e.contains("mem.jsonl:7: completion of 5 tokens does not fit: 4 of max_len 6 left"),
        "{e}"
    );
    let mut tr = Truncation::truncate(6);
    tr.prompt = Overflow::Error;
    let enc = Encoder::new(gpt2(), &t, tr);
    assert_eq!(
        enc.sft(&sft("one two", " three four five six seven"))
            .unwrap()
            .ids
            .len(),
        6
    );
    // encode_all skips such rows when asked and keeps the reasons.
    let rows = vec![
        sft("a", " b"),
        sft("one two three four five six seven", " x"),
        sft("c", " d"),
    ];
    let e = err_text(encode_all(&rows, false, |r| enc.sft(r)));
    assert!(e.contains("longer than the context"));
    let (ok, skipped, reasons) = encode_all(&rows, true, |r| enc.sft(r)).unwrap();
    assert_eq!((ok.len(), skipped), (2, 1));
    assert!(reasons[0].starts_with("mem.jsonl:7: prompt of 7 tokens"));
}

#[test]
fn a_conversation_cut_before_any_answer_is_an_error() {
    let t = ChatTemplate::gpt2();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(4));
    let m = vec![
        Message::user("a long question with many words"),
        Message::assistant("ok"),
    ];
    let e = err_text(enc.sft(&row(SftRecord::Messages(m.clone()), 3)));
    assert!(
        e.contains("mem.jsonl:3: no completion token left to train on within max_len 4"),
        "{e}"
    );
    let enc = Encoder::new(gpt2(), &t, Truncation::strict(4));
    let e = err_text(enc.sft(&row(SftRecord::Messages(m), 3)));
    assert!(e.contains("mem.jsonl:3: conversation of"), "{e}");
}

#[test]
fn kto_prompt_and_classifier_examples() {
    let t = ChatTemplate::gpt2();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(64));
    let d = load_kto(&fixture("kto.jsonl"), &LoadOptions::default()).unwrap();
    let k = enc.kto(&d.rows[1]).unwrap();
    assert_eq!(k.prompt_ids, ids("User: Q: 1+1?\nAssistant:"));
    assert_eq!(
        k.completion_ids,
        ids(" 3<|endoftext|>"),
        "the lead replaces the data's space"
    );
    assert!(!k.label);
    let p = load_prompts(&fixture("prompts.jsonl"), &LoadOptions::default()).unwrap();
    let pe = enc.prompt(&p.rows[2]).unwrap();
    assert_eq!(
        decode(&pe.prompt_ids),
        "System: Be kind.\nUser: Help me.\nAssistant:"
    );
    let c = load_classifier(&fixture("classifier.jsonl"), &LoadOptions::default()).unwrap();
    let ce = enc.classifier(&c.rows[0]).unwrap();
    assert_eq!((ce.ids.clone(), ce.label), (ids("A wonderful film."), 1));
    assert_eq!(ce.origin.line, 1);
}
