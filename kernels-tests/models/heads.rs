//! Value and reward heads against transformers: TRL's v_head layout and
//! GPT2/GPTNeoXForSequenceClassification scored at the last real token, for
//! left- and right-padded batches.

use super::parity::{fixture, ids};
use crate::common::*;
use engine::models::layers::{Fwd, Tokens};
use engine::models::lm::Head;
use engine::Tape;

fn check_values(name: &str) {
    let (model, json, refs) = fixture(&format!("{name}-value"));
    assert_eq!(model.head, Head::LmWithValue);
    let tokens = Tokens::new(ids(&json["input_ids"]), 2).unwrap();
    let tape = Tape::new(&gpu());
    let vars = model.vars(&tape);
    let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
    let h = model.hidden(&f, None).unwrap();
    let want = refs.unwrap().get("values").unwrap();
    let got = model.values(&f, &h).unwrap();
    assert_eq!(got.shape(), want.shape.as_slice());
    assert_close(
        &format!("{name} values"),
        &got.tensor().to_vec().unwrap(),
        &to_f64(&want.data),
        1e-5,
        1e-4,
    );
}

fn check_rewards(name: &str) {
    let (model, json, _) = fixture(&format!("{name}-reward"));
    assert_eq!(model.head, Head::Reward);
    for batch in json["batches"].as_array().unwrap() {
        let side = batch["padding_side"].as_str().unwrap();
        let token_ids = ids(&batch["input_ids"]);
        let mask = ids(&batch["attention_mask"]);
        let positions = ids(&batch["position_ids"]);
        let seq = token_ids.len() / 2;
        let tokens = Tokens {
            batch: 2,
            seq,
            ids: token_ids,
            positions,
            mask,
        };
        let tape = Tape::new(&gpu());
        let vars = model.vars(&tape);
        let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
        let h = model.hidden(&f, None).unwrap();
        let scores = model.scores(&f, &h).unwrap();
        let want: Vec<f64> = batch["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_close(
            &format!("{name} {side}-padded scores"),
            &scores.tensor().to_vec().unwrap(),
            &want,
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn gpt2_value_head() {
    check_values("gpt2-tiny");
}

#[test]
fn neox_value_head() {
    check_values("neox-parallel");
}

#[test]
fn gpt2_reward_head_left_and_right_padding() {
    check_rewards("gpt2-tiny");
}

#[test]
fn neox_reward_head_left_and_right_padding() {
    check_rewards("neox-parallel");
}
