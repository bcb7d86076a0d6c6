//! `--report-to tensorboard,csv`, `--epochs` and the chart: the event
//! records equal TensorBoard's own writer's bytes (the committed fixture of
//! `fixtures/make_tfevents_fixture.py`), the CSV widens its header for keys
//! first seen mid-run, an SFT run by epochs takes transformers' step count
//! and logs a fractional `epoch`, and the chart ticks whole steps once each.

use super::{fixture, metric, metric_rows, model_dir, parse, root, scratch};
use engine::train::chart::write_chart;
use engine::train::metrics::report_to::{event, masked_crc32c, tf_record, ReportTo};
use engine::train::metrics::MetricsLog;
use engine::train::sft::{train_sft, SftArgs};

/// (wall time, step, file version, scalars) of one event.
type Event<'a> = (f64, i64, Option<&'a str>, Vec<(&'a str, f32)>);

/// The events of the Python fixture script, in its order.
fn fixture_events() -> Vec<u8> {
    let events: [Event; 4] = [
        (1700000000.5, 0, Some("brain.Event:2"), vec![]),
        (
            1700000001.25,
            1,
            None,
            vec![("loss", 0.7), ("learning_rate", 1e-5), ("grad_norm", 3.5)],
        ),
        (
            1700000002.0,
            3,
            None,
            vec![("loss", 0.25), ("rewards/margins", -1.5), ("epoch", 0.0)],
        ),
        (1700000003.75, 300, None, vec![("eval_loss", 1e30)]),
    ];
    let mut out = Vec::new();
    for (wall, step, version, scalars) in &events {
        out.extend(tf_record(&event(*wall, *step, *version, scalars)));
    }
    out
}

#[test]
fn tensorboard_records_equal_tensorboards_own_writer() {
    let path = root().join("kernels-tests/fixtures/tfevents/fixture.tfevents");
    let want = std::fs::read(&path).unwrap();
    assert_eq!(fixture_events(), want);
    // CRC-32C's check value, masked as TensorFlow does.
    assert_eq!(
        engine::train::metrics::report_to::crc32c(b"123456789"),
        0xE306_9283
    );
    assert_eq!(masked_crc32c(b""), 0xa282_ead8);
}

/// The TFRecords of `bytes`, their CRCs checked.
fn records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        assert_eq!(crc, masked_crc32c(&bytes[..8]));
        let data = &bytes[12..12 + len];
        let crc = u32::from_le_bytes(bytes[12 + len..16 + len].try_into().unwrap());
        assert_eq!(crc, masked_crc32c(data));
        out.push(data.to_vec());
        bytes = &bytes[16 + len..];
    }
    out
}

#[test]
fn metrics_go_to_csv_and_tensorboard_too() {
    let dir = scratch("report-to");
    let mut log = MetricsLog::open(&dir, false).unwrap();
    log.report_to(&[ReportTo::Tensorboard, ReportTo::Csv])
        .unwrap();
    log.write(1, &[("loss", 0.5), ("learning_rate", 1e-3)])
        .unwrap();
    log.write(
        2,
        &[("loss", 0.25), ("learning_rate", 1e-3), ("eval_loss", 0.75)],
    )
    .unwrap();
    log.write(3, &[("loss", 0.125), ("learning_rate", 5e-4)])
        .unwrap();
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(
        csv,
        "step,learning_rate,loss,eval_loss\n1,0.001,0.5,\n2,0.001,0.25,0.75\n3,0.0005,0.125,\n"
    );
    let events: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let name = events[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let recs = records(&std::fs::read(&events[0]).unwrap());
    assert_eq!(recs.len(), 4, "file_version + 3 steps");
    assert!(recs[0].windows(13).any(|w| w == b"brain.Event:2"));
    assert!(recs[2].windows(9).any(|w| w == b"eval_loss"));
    // A resumed log rewrites the CSV from its rows and starts a new event file.
    let mut again = MetricsLog::open(&dir, true).unwrap();
    again.report_to(&[ReportTo::Csv]).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        csv
    );
}

#[test]
fn epochs_set_the_steps_as_transformers_trainer_and_epoch_is_fractional() {
    let out = scratch("sft-epochs");
    let flags = [
        "--model",
        &model_dir("gpt2-tiny"),
        "--data",
        &fixture("sft_train.jsonl"),
        "--out",
        &out.display().to_string(),
        "--progress",
        "silent",
        "--num-train-epochs",
        "1.5",
        "--per-device-train-batch-size",
        "2",
        "--gradient-accumulation-steps",
        "2",
        "--report-to",
        "csv",
    ];
    let args: SftArgs = parse(&flags);
    assert_eq!(args.common.epochs, Some(1.5));
    let (_, summary) = train_sft(&crate::common::gpu(), args).unwrap();
    // 12 rows / batch 2 = 6 micro-batches an epoch, 3 updates an epoch:
    // ⌈1.5 × 3⌉ = 5 steps of 2 micro-batches.
    assert_eq!(summary.total_steps, 5);
    let rows = metric_rows(&out);
    assert_eq!(rows.len(), 5);
    let epochs: Vec<f64> = rows.iter().map(|r| metric(r, "epoch")).collect();
    let want = [2.0 / 6.0, 4.0 / 6.0, 1.0, 1.0 + 2.0 / 6.0, 1.0 + 4.0 / 6.0];
    for (got, want) in epochs.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{epochs:?}");
    }
    for key in ["loss", "learning_rate", "grad_norm", "num_tokens"] {
        assert!(rows[0].contains_key(key), "{key} missing: {:?}", rows[0]);
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
}

#[test]
fn the_chart_ticks_each_whole_step_once() {
    let dir = scratch("chart-ticks");
    let mut log = MetricsLog::open(&dir, false).unwrap();
    for (step, loss) in [(1, 0.3), (2, 0.45), (3, 0.35)] {
        log.write(step, &[("loss", loss)]).unwrap();
    }
    let path = dir.join("chart.svg");
    write_chart(&log, &["loss"], &path, "t").unwrap().unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    for tick in ["1", "2", "3"] {
        let n = svg.matches(&format!(">\n{tick}\n</text>")).count();
        assert_eq!(n, 1, "tick {tick} drawn {n} times");
    }
}
