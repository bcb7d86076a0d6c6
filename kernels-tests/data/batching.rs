//! Padded batches for the model (right for training, left for generation),
//! seeded train/eval splits and epoch orders.

use super::helpers::{fixture, gpt2};
use engine::data::*;
use engine::models::layers::Tokens;
use engine::models::lm::next_token_targets;

const PAD: i32 = 50256;

fn origin() -> Origin {
    Origin {
        file: std::path::Path::new("mem.jsonl").into(),
        line: 1,
    }
}

#[test]
fn right_padding_layout() {
    let t = right_padded(&[vec![5, 6, 7], vec![8]], PAD).unwrap();
    assert_eq!((t.batch, t.seq), (2, 3));
    assert_eq!(t.ids, [5, 6, 7, 8, PAD, PAD]);
    assert_eq!(t.mask, [1, 1, 1, 1, 0, 0]);
    assert_eq!(t.positions, [0, 1, 2, 0, 0, 0]);
    // The left-padded counterpart, for the same rows.
    let l = Tokens::left_padded(&[vec![5, 6, 7], vec![8]], PAD).unwrap();
    assert_eq!(l.ids, [5, 6, 7, PAD, PAD, 8]);
    assert_eq!(l.positions, [0, 1, 2, 0, 0, 0]);
    assert!(right_padded(&[], PAD).is_err());
    assert!(right_padded(&[vec![]], PAD).is_err());
}

#[test]
fn sft_batch_targets_only_completions() {
    let a = SftExample {
        ids: vec![1, 2, 3, 4],
        loss_mask: vec![0, 0, 1, 1],
        origin: origin(),
    };
    let b = SftExample {
        ids: vec![5, 6],
        loss_mask: vec![0, 1],
        origin: origin(),
    };
    let batch = sft_batch([&a, &b], PAD).unwrap();
    assert_eq!(batch.tokens.ids, [1, 2, 3, 4, 5, 6, PAD, PAD]);
    assert_eq!(batch.loss_mask, [0, 0, 1, 1, 0, 1, 0, 0]);
    // What CausalLm::lm_loss predicts from this batch: completion tokens only.
    let targets = next_token_targets(&batch.tokens, Some(&batch.loss_mask));
    assert_eq!(targets, [-100, 3, 4, -100, 6, -100, -100, -100]);
}

#[test]
fn preference_batch_rows_chosen_then_rejected() {
    let e = |p: Vec<i32>, c: Vec<i32>, r: Vec<i32>| PreferenceExample {
        prompt_ids: p,
        chosen_ids: c,
        rejected_ids: r,
        origin: origin(),
    };
    let ex = [
        e(vec![1, 2], vec![3], vec![4, 5]),
        e(vec![6], vec![7, 8, 9], vec![10]),
    ];
    let b = preference_batch(&ex, PAD).unwrap();
    assert_eq!(b.pairs, 2);
    let t = &b.batch.tokens;
    assert_eq!((t.batch, t.seq), (4, 4));
    assert_eq!(
        t.ids,
        [1, 2, 3, PAD, 6, 7, 8, 9, 1, 2, 4, 5, 6, 10, PAD, PAD]
    );
    assert_eq!(
        b.batch.loss_mask,
        [0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0]
    );
}

#[test]
fn kto_classifier_and_prompt_batches_from_fixtures() {
    let t = ChatTemplate::gpt2();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(64));
    let k = load_kto(&fixture("kto.jsonl"), &LoadOptions::default()).unwrap();
    let (kx, _, _) = encode_all(&k.rows, false, |r| enc.kto(r)).unwrap();
    let kb = kto_batch(&kx, PAD).unwrap();
    assert_eq!(kb.labels, [true, false, true, false]);
    assert_eq!(kb.batch.tokens.batch, 4);
    for (i, e) in kx.iter().enumerate() {
        let row = &kb.batch.loss_mask[i * kb.batch.tokens.seq..][..kb.batch.tokens.seq];
        assert_eq!(row.iter().sum::<i32>() as usize, e.completion_ids.len());
    }
    let c = load_classifier(&fixture("classifier.jsonl"), &LoadOptions::default()).unwrap();
    let (cx, _, _) = encode_all(&c.rows, false, |r| enc.classifier(r)).unwrap();
    let cb = classifier_batch(&cx, PAD).unwrap();
    assert_eq!(cb.labels, [1, 0, 1]);
    // Each row's last real token is its text's last token.
    for (i, e) in cx.iter().enumerate() {
        let s = cb.tokens.seq;
        let last = cb.tokens.mask[i * s..(i + 1) * s]
            .iter()
            .rposition(|&m| m == 1)
            .unwrap();
        assert_eq!(cb.tokens.ids[i * s + last], *e.ids.last().unwrap());
    }
    let p = load_prompts(&fixture("prompts.jsonl"), &LoadOptions::default()).unwrap();
    let (px, _, _) = encode_all(&p.rows, false, |r| enc.prompt(r)).unwrap();
    let pb = prompt_batch(&px, PAD).unwrap();
    let s = pb.seq;
    for (i, e) in px.iter().enumerate() {
        assert_eq!(
            pb.ids[(i + 1) * s - e.prompt_ids.len()..(i + 1) * s],
            e.prompt_ids
        );
        assert_eq!(pb.positions[(i + 1) * s - 1], e.prompt_ids.len() as i32 - 1);
    }
}

#[test]
fn train_eval_split_is_seeded_and_disjoint() {
    let items: Vec<usize> = (0..100).collect();
    let (train, eval) = train_eval_split(items.clone(), 0.1, 7).unwrap();
    assert_eq!((train.len(), eval.len()), (90, 10));
    let mut all = [train.clone(), eval.clone()].concat();
    all.sort();
    assert_eq!(all, items);
    assert!(eval.windows(2).all(|w| w[0] < w[1]), "input order kept");
    assert_eq!(train_eval_split(items.clone(), 0.1, 7).unwrap().1, eval);
    assert_ne!(train_eval_split(items.clone(), 0.1, 8).unwrap().1, eval);
    assert_eq!(train_eval_split(items.clone(), 0.0, 7).unwrap().1.len(), 0);
    assert_eq!(train_eval_split(vec![1, 2, 3], 0.01, 7).unwrap().1.len(), 1);
    assert!(train_eval_split(items.clone(), 1.0, 7).is_err());
    assert!(train_eval_split(vec![1], 0.5, 7).is_err());
}

#[test]
fn epochs_are_seeded_permutations() {
    let s = EpochSampler::new(10, 3, 42).unwrap();
    assert_eq!(s.batches_per_epoch(), 4);
    let e0: Vec<Vec<usize>> = s.epoch(0).collect();
    assert_eq!(e0.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
    let mut seen: Vec<usize> = e0.concat();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(s.epoch(0).collect::<Vec<_>>(), e0, "replayable");
    assert_ne!(s.epoch(1).collect::<Vec<_>>(), e0, "reshuffled each epoch");
    let d = s.clone().drop_last(true);
    assert_eq!(d.epoch(0).collect::<Vec<_>>(), e0[..3]);
    let run: Vec<(u64, Vec<usize>)> = s.iter_from(1).take(5).collect();
    assert_eq!(run[0], (1, s.epoch(1).next().unwrap()));
    assert_eq!(run[4].0, 2);
    assert_eq!(
        EpochSampler::new(2, 3, 0)
            .unwrap()
            .drop_last(true)
            .iter_from(0)
            .next(),
        None
    );
    assert!(EpochSampler::new(5, 0, 0).is_err());
    let sh = shuffled(1000, 3);
    assert_ne!(sh, (0..1000).collect::<Vec<_>>());
}
