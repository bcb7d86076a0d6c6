//! Progress for a training run: an indicatif bar with ETA and the latest
//! values of a few chosen metrics when stdout is a terminal; otherwise (CI,
//! logs piped to a file) a plain line every `log_every` steps and at the
//! end, so logs stay readable.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// A bar when stdout is a terminal, else plain lines.
    Auto,
    Bar,
    /// One line every `log_every` steps (and the last step).
    Plain,
    /// Nothing but warnings (tests, library use).
    Silent,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    mode: ProgressMode,
    what: String,
    total: u64,
    log_every: u64,
    /// Metric names shown, in order.
    shown: Vec<String>,
    started: Instant,
    start_step: u64,
}

/// Integers as they are, `1.234e-5`-style for tiny or huge values, else
/// 4 significant digits without trailing zeros.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if v.fract() == 0.0 && a < 1e9 {
        format!("{v:.0}")
    } else if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.3e}")
    }
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl Progress {
    /// `what` names the run (`sft`, `ppo`, ...); `start_step` is the step a
    /// resumed run starts after; `shown` the metric keys for the message.
    pub fn new(
        mode: ProgressMode,
        what: &str,
        start_step: u64,
        total: u64,
        log_every: u64,
        shown: &[&str],
    ) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stdout().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        let bar = (mode == ProgressMode::Bar).then(|| {
            let style = ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout())
                .with_style(style)
                .with_prefix(what.to_string())
                .with_position(start_step);
            bar.reset_eta();
            bar
        });
        Progress {
            bar,
            mode,
            what: what.to_string(),
            total,
            log_every: log_every.max(1),
            shown: shown.iter().map(|s| s.to_string()).collect(),
            started: Instant::now(),
            start_step,
        }
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// The chosen metrics present in `row`, as `name value` pairs.
    fn message(&self, row: &[(String, f64)]) -> String {
        self.shown
            .iter()
            .filter_map(|k| {
                let (_, v) = row.iter().find(|(n, _)| n == k)?;
                Some(format!("{k} {}", fmt_value(*v)))
            })
            .collect::<Vec<_>>()
            .join("  ")
    }

    /// Records that `step` finished with the metrics in `row`.
    pub fn update(&mut self, step: u64, row: &[(String, f64)]) {
        let msg = self.message(row);
        match self.mode {
            ProgressMode::Bar => {
                if let Some(b) = &self.bar {
                    b.set_message(msg);
                    b.set_position(step);
                }
            }
            ProgressMode::Plain if step.is_multiple_of(self.log_every) || step == self.total => {
                let done = (step - self.start_step.min(step)) as f64;
                let secs = self.started.elapsed().as_secs_f64();
                let eta = if done > 0.0 {
                    secs / done * (self.total.saturating_sub(step)) as f64
                } else {
                    0.0
                };
                println!(
                    "[{}] step {step}/{} elapsed {} eta {}  {msg}",
                    self.what,
                    self.total,
                    fmt_secs(secs),
                    fmt_secs(eta)
                );
            }
            _ => {}
        }
    }

    /// A line that does not break the bar (warnings, eval results). Shown
    /// in every mode but Silent, where it goes to stderr only for warnings.
    pub fn println(&self, line: &str) {
        match (&self.bar, self.mode) {
            (Some(b), _) => b.println(line),
            (None, ProgressMode::Silent) => {}
            (None, _) => println!("{line}"),
        }
    }

    /// A warning: always shown (stderr when there is no bar).
    pub fn warn(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(format!("warning: {line}")),
            None => eprintln!("warning: {line}"),
        }
    }

    /// Ends the bar (left on screen with its last message); the caller
    /// prints the summary.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
