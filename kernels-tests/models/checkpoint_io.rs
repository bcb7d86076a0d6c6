//! safetensors reading and writing: dtypes, shards, atomic writes, and errors
//! that name the file and tensor.

use crate::common::Scratch;
use engine::models::checkpoint::{save_safetensors, SaveDtype};
use engine::models::{Checkpoint, HostTensor};
use std::collections::BTreeMap;

fn sample() -> BTreeMap<String, HostTensor> {
    BTreeMap::from([
        (
            "a.weight".to_string(),
            HostTensor::new(&[2, 3], vec![1.0, -2.0, 0.5, 3.25, 0.0, -0.125]),
        ),
        (
            "b.bias".to_string(),
            HostTensor::new(&[3], vec![7.0, 8.0, 9.0]),
        ),
    ])
}

#[test]
fn round_trips_in_every_float_dtype() {
    for dtype in [SaveDtype::F32, SaveDtype::F16, SaveDtype::BF16] {
        let dir = Scratch::new(&format!("rt{dtype:?}"));
        save_safetensors(&dir.join("model.safetensors"), &sample(), dtype).unwrap();
        let ck = Checkpoint::open(&dir).unwrap();
        for (name, t) in sample() {
            assert_eq!(
                ck.get_shaped(&name, &t.shape).unwrap(),
                t,
                "{dtype:?} {name}"
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "model.safetensors")
            .collect();
        assert!(leftovers.is_empty(), "atomic write left temporary files");
    }
}

#[test]
fn reads_sharded_checkpoints() {
    let dir = Scratch::new("shards");
    let mut s = sample();
    let b = s.split_off("b");
    save_safetensors(
        &dir.join("model-00001-of-00002.safetensors"),
        &s,
        SaveDtype::F32,
    )
    .unwrap();
    save_safetensors(
        &dir.join("model-00002-of-00002.safetensors"),
        &b,
        SaveDtype::F32,
    )
    .unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": {
        "a.weight": "model-00001-of-00002.safetensors", "b.bias": "model-00002-of-00002.safetensors"}});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let ck = Checkpoint::open(&dir).unwrap();
    assert_eq!(ck.get("b.bias").unwrap().data, vec![7.0, 8.0, 9.0]);
    assert_eq!(ck.names().count(), 2);
}

#[test]
fn bad_files_and_tensors_are_named() {
    let dir = Scratch::new("bad");
    std::fs::write(
        dir.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}",
    )
    .unwrap();
    let e = format!("{:#}", Checkpoint::open(&dir).err().unwrap());
    assert!(
        e.contains("model.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );

    save_safetensors(&dir.join("model.safetensors"), &sample(), SaveDtype::F32).unwrap();
    let ck = Checkpoint::open(&dir).unwrap();
    let e = ck.get("missing.weight").unwrap_err().to_string();
    assert!(
        e.contains("missing.weight") && e.contains("model.safetensors"),
        "{e}"
    );
    let e = ck.get_shaped("a.weight", &[3, 2]).unwrap_err().to_string();
    assert!(
        e.contains("a.weight") && e.contains("[2, 3]") && e.contains("[3, 2]"),
        "{e}"
    );

    let empty = Scratch::new("empty");
    let e = Checkpoint::open(&empty).err().unwrap().to_string();
    assert!(e.contains("no model.safetensors"), "{e}");
}

#[test]
fn transpose_swaps_axes() {
    let t = HostTensor::new(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).transposed();
    assert_eq!(
        (t.shape, t.data),
        (vec![3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
    );
}
