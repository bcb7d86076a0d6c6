//! The rollout against direct computations: log-probs and values of each
//! sequence alone (unpadded, one pass), masks that stop after EOS, and
//! reward-model scores at the last real token.

use super::{policy, prompts, root, tiny_cfg};
use crate::common::gpu;
use engine::models::layers::{Fwd, Tokens};
use engine::models::lm::{next_token_targets, CausalLm};
use engine::ops::cross_entropy::token_logprobs;
use engine::train::ppo::rollout::{rollout, RefSource, RolloutConfig};
use engine::train::ppo::PpoTrainer;
use engine::train::reward_fn::{Keyword, RewardFn, TargetTokenRate};
use engine::train::scoring::{RewardModelScorer, RmInput, Sample, Scorer};
use engine::{Tape, Tensor};

/// Log-probs of each next token and the values, for one unpadded sequence.
fn direct(model: &CausalLm, seq: &[i32]) -> (Vec<f32>, Vec<f32>) {
    let tokens = Tokens::new(seq.to_vec(), 1).unwrap();
    let tape = Tape::new(&gpu());
    let vars = model.vars(&tape);
    let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
    let h = model.hidden(&f, None).unwrap();
    let logits = model.logits(&f, &h).unwrap();
    let v = logits.shape()[2];
    let logits = tape.reshape(&logits, &[seq.len(), v]).unwrap();
    let targets = next_token_targets(&tokens, None);
    let targets = Tensor::from_i32(&gpu(), &[seq.len()], &targets).unwrap();
    let logp = token_logprobs(&tape, &logits, &targets, 1.0).unwrap();
    let values = model.values(&f, &h).unwrap();
    (
        logp.tensor().to_vec().unwrap(),
        values.tensor().to_vec().unwrap(),
    )
}

#[test]
fn rollout_matches_direct_logprobs_and_masks_stop_after_eos() {
    let model = policy("gpt2-tiny");
    let ps = prompts(&model);
    let reference = RefSource::frozen_copy(&model).unwrap();
    if let RefSource::Model(m) = &reference {
        assert_eq!(m.head, engine::models::lm::Head::Lm);
        assert!(m
            .params
            .iter()
            .all(|p| !p.trainable && !p.name.starts_with("v_head.")));
    }
    let target = TargetTokenRate { token: 38 };
    let scorer = target;
    // " the" as EOS: frequent enough that some responses end early.
    let eos = 38;
    let cfg = RolloutConfig {
        max_new_tokens: 6,
        eos: Some(eos),
        seed: 11,
        forward_batch_size: 3,
        sync_phases: false,
    };
    let ro = rollout(&model, &reference, &scorer, &ps, &cfg).unwrap();
    let t = ro.t;
    assert_eq!(t, ro.responses.iter().map(Vec::len).max().unwrap());
    let done = ro.finished.iter().filter(|&&f| f).count();
    assert!(
        done > 0 && done < ps.len(),
        "want both endings, got {:?}",
        ro.finished
    );
    for (b, r) in ro.responses.iter().enumerate() {
        let ends = r.iter().position(|&x| x == eos);
        if ro.finished[b] {
            assert_eq!(
                ends,
                Some(r.len() - 1),
                "row {b}: EOS is kept, nothing after it"
            );
            assert_eq!(
                ro.response_texts[b],
                model.decode(&r[..r.len() - 1]).unwrap()
            );
        } else {
            assert_eq!((ends, r.len()), (None, 6), "row {b} ran to max_new_tokens");
        }
        let q = &ro.queries[b];
        let seq: Vec<i32> = q
            .iter()
            .copied()
            .chain(r.iter().map(|&x| x as i32))
            .collect();
        let (logp, values) = direct(&model, &seq);
        for k in 0..t {
            let i = b * t + k;
            if k < r.len() {
                assert_eq!(ro.mask[i], 1.0);
                let j = q.len() - 1 + k;
                assert!(
                    (ro.logp[i] - logp[j]).abs() < 1e-4,
                    "row {b} token {k}: logp {} vs {}",
                    ro.logp[i],
                    logp[j]
                );
                assert!(
                    (ro.values[i] - values[j]).abs() < 1e-4,
                    "row {b} token {k}: value {} vs {}",
                    ro.values[i],
                    values[j]
                );
                // The frozen copy is the same model.
                assert!((ro.ref_logp[i] - ro.logp[i]).abs() < 1e-5);
            } else {
                assert_eq!((ro.mask[i], ro.logp[i], ro.ref_logp[i]), (0.0, 0.0, 0.0));
            }
        }
        assert_eq!(ro.scores[b], target.reward("", "", r));
    }
}

fn sample<'a>(
    prompt_ids: &'a [i32],
    response_ids: &'a [u32],
    prompt: &'a str,
    response: &'a str,
    finished: bool,
) -> Sample<'a> {
    Sample {
        prompt_ids,
        response_ids,
        prompt,
        response,
        finished,
    }
}

fn rm_score(rm: &CausalLm, ids: &[i32]) -> f32 {
    let tokens = Tokens::new(ids.to_vec(), 1).unwrap();
    let tape = Tape::new(&gpu());
    let vars = rm.vars(&tape);
    let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
    let h = rm.hidden(&f, None).unwrap();
    rm.scores(&f, &h).unwrap().tensor().to_vec().unwrap()[0]
}

#[test]
fn reward_model_scores_at_the_last_real_token() {
    let dir = root().join("models/fixtures/gpt2-tiny-reward");
    let rm = CausalLm::load(&gpu(), &dir).unwrap();
    let texts = [
        ("The miller opened", " the wooden doors", true),
        ("A good engine", " gives the same answer every time", false),
        ("The river", " turned", true),
    ];
    let ids: Vec<(Vec<i32>, Vec<u32>)> = texts
        .iter()
        .map(|(p, r, done)| {
            let mut resp: Vec<u32> = rm.encode(r).unwrap().iter().map(|&x| x as u32).collect();
            if *done {
                resp.push(0);
            }
            (rm.encode(p).unwrap(), resp)
        })
        .collect();
    let samples: Vec<Sample> = texts
        .iter()
        .zip(&ids)
        .map(|((p, r, done), (pi, ri))| sample(pi, ri, p, r, *done))
        .collect();
    let mut scorer = RewardModelScorer::new(rm).unwrap();
    assert_eq!(scorer.input, RmInput::Retokenize);
    scorer.batch_size = 2; // two passes, the second one unpadded
    let got = scorer.score(&samples).unwrap();
    for (s, g) in samples.iter().zip(&got) {
        let mut want_ids = scorer
            .model
            .encode(&format!("{}{}", s.prompt, s.response))
            .unwrap();
        if s.finished {
            want_ids.push(0);
        }
        assert_eq!(scorer.encode(s).unwrap(), want_ids);
        let want = rm_score(&scorer.model, &want_ids);
        assert!((g - want).abs() < 1e-5, "{g} vs {want}");
    }
    scorer.input = RmInput::SameTokens;
    let same = scorer.score(&samples).unwrap();
    for (s, g) in samples.iter().zip(&same) {
        let mut ids = s.prompt_ids.to_vec();
        ids.extend(s.response_ids.iter().map(|&x| x as i32));
        assert!((g - rm_score(&scorer.model, &ids)).abs() < 1e-5);
    }
    // A custom format changes what the RM reads.
    scorer.input = RmInput::Retokenize;
    scorer.format = Some(Box::new(|p: &str, r: &str| format!("{p}\n{r}")));
    let fmt = scorer.encode(&samples[0]).unwrap();
    assert_eq!(
        &fmt[..fmt.len() - 1],
        &scorer
            .model
            .encode("The miller opened\n the wooden doors")
            .unwrap()[..]
    );

    // A PPO step scored by the reward model.
    let model = policy("gpt2-tiny");
    let ps = prompts(&model);
    let reference = RefSource::frozen_copy(&model).unwrap();
    let rm = CausalLm::load(&gpu(), &dir).unwrap();
    let scorer = Box::new(RewardModelScorer::new(rm).unwrap());
    let mut tr = PpoTrainer::new(model, reference, scorer, tiny_cfg()).unwrap();
    let r = tr.step(&ps).unwrap();
    assert!(r.scores.iter().all(|s| s.is_finite()) && r.loss.total.is_finite());
    let mean = r.scores.iter().map(|&s| s as f64).sum::<f64>() / r.scores.len() as f64;
    assert!((r.reward_mean - mean).abs() < 1e-9);
}

#[test]
fn reward_functions() {
    let rate = TargetTokenRate { token: 7 };
    assert_eq!(rate.reward("", "", &[7, 1, 7, 0]), 0.5);
    assert_eq!(rate.reward("", "", &[]), 0.0);
    let kw = Keyword::new(&["Thanks", "help"]);
    assert_eq!(kw.reward("", "thanks for the HELP, thanks", &[]), 2.0);
    assert_eq!(kw.reward("", "nothing", &[]), 0.0);
    let closure = |_: &str, r: &str, _: &[u32]| r.len() as f32;
    let s: Box<dyn Scorer> = Box::new(closure);
    let got = s.score(&[sample(&[1], &[2], "p", "abc", true)]).unwrap();
    assert_eq!(got, vec![3.0]);
}

/// The update's entropy: the LM head and softmax run only on the positions
/// that predict a response token; each matches the distribution of the
/// sequence alone, and the masked positions read exact zeros.
#[test]
fn response_entropy_covers_response_positions_only() {
    use engine::ops::entropy::entropy;
    use engine::train::ppo::rollout::{response_forward, ResponseBatch};
    let model = policy("gpt2-tiny");
    let qs: Vec<Vec<i32>> = prompts(&model).into_iter().take(4).collect();
    let rs: Vec<Vec<u32>> = [
        vec![5, 9, 38],
        vec![7],
        vec![11, 12, 13, 14, 15],
        vec![2, 3],
    ]
    .into_iter()
    .collect();
    let t = 6;
    let batch = ResponseBatch::new(&qs, &rs, t, 0).unwrap();
    let tape = Tape::new(&gpu());
    let vars = model.vars(&tape);
    let out = response_forward(&model, &tape, &vars, &batch, false).unwrap();
    let ent = out.entropy(&tape).unwrap();
    assert_eq!(ent.shape(), &[4, t]);
    let ent = ent.tensor().to_vec().unwrap();
    for (b, (q, r)) in qs.iter().zip(&rs).enumerate() {
        let seq: Vec<i32> = q
            .iter()
            .copied()
            .chain(r.iter().map(|&x| x as i32))
            .collect();
        let tokens = Tokens::new(seq.clone(), 1).unwrap();
        let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
        let logits = model.logits(&f, &model.hidden(&f, None).unwrap()).unwrap();
        let v = logits.shape()[2];
        let rows = tape.reshape(&logits, &[seq.len(), v]).unwrap();
        let direct = entropy(&tape, &rows, 1.0)
            .unwrap()
            .tensor()
            .to_vec()
            .unwrap();
        for k in 0..t {
            let got = ent[b * t + k];
            if k < r.len() {
                let want = direct[q.len() - 1 + k];
                assert!(
                    (got - want).abs() < 1e-4,
                    "row {b} token {k}: {got} vs {want}"
                );
            } else {
                assert_eq!(got.to_bits(), 0, "row {b} token {k} is masked");
            }
        }
    }
}

/// A minibatch whose responses are all empty has nothing to score: zeros,
/// not an error from an LM head over no rows.
#[test]
fn a_batch_of_empty_responses_gives_zeros() {
    use engine::train::ppo::rollout::{response_forward, ResponseBatch};
    let model = policy("gpt2-tiny");
    let qs: Vec<Vec<i32>> = prompts(&model).into_iter().take(2).collect();
    let batch = ResponseBatch::new(&qs, &[vec![], vec![]], 3, 0).unwrap();
    let tape = Tape::new(&gpu());
    let vars = model.vars(&tape);
    let out = response_forward(&model, &tape, &vars, &batch, true).unwrap();
    assert_eq!(out.logp.tensor().to_vec().unwrap(), vec![0.0; 6]);
    assert_eq!(
        out.entropy(&tape).unwrap().tensor().to_vec().unwrap(),
        vec![0.0; 6]
    );
    assert_eq!(out.values.unwrap().shape(), &[2, 3]);
}
