//! Merging a command's flags with a TOML run file (`--config run.toml`)
//! and, on `--resume`, with the checkpoint's stored config: the layers and
//! the file format are described in [`super`].

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{CommonArgs, TrainArgs};

/// Tables a run file may hold, one per command. Add a command's name here
/// when it gets its own table.
pub const SECTIONS: &[&str] = &["sft", "reward", "ppo", "dpo", "best-of-n", "eval"];

/// Keys never taken from a resumed checkpoint's stored config. `out` is not:
/// a resumed run writes into the directory it was resumed from (or --out),
/// never into the one recorded when the checkpoint was made (which a copied
/// run would overwrite); `force` is asked for anew each time.
const NOT_RESUMED: &[&str] = &["resume", "config", "stop-after", "out", "force"];

/// Options that say the same thing two ways (`--steps` or `--epochs`): a
/// layer that sets one drops the other from the layers below it, and one
/// layer (a run file) may not set both.
const EITHER: &[(&str, &str)] = &[("steps", "epochs")];

/// The other option of `key`'s [`EITHER`] pair.
fn partner(key: &str) -> Option<&'static str> {
    EITHER.iter().find_map(|&(a, b)| match key {
        k if k == a => Some(b),
        k if k == b => Some(a),
        _ => None,
    })
}

/// Any command whose options [`load_args`] merges with a run file: every
/// trainer (through [`TrainArgs`]) and the sampling commands (best-of-n,
/// eval), which take a few of the shared options under the same names.
pub trait RunArgs: Serialize + DeserializeOwned + Args {
    /// The run file's table for this command (one of [`SECTIONS`]).
    const SECTION: &'static str;
    /// `--config`.
    fn run_file(&self) -> Option<&Path>;
    /// Checks after merging.
    fn validate(&self) -> Result<()>;
    /// Flat run-file keys this command skips; `known` says whether it has
    /// an option of that name. Trainers skip none (an unknown key is an
    /// error); the sampling commands skip the trainers' shared options they
    /// do not take, so one file drives a whole pipeline.
    fn skips_flat_key(key: &str, known: bool) -> bool {
        let _ = (key, known);
        false
    }
}

impl<T: TrainArgs + Args> RunArgs for T {
    const SECTION: &'static str = <T as TrainArgs>::SECTION;
    fn run_file(&self) -> Option<&Path> {
        self.common().config.as_deref()
    }
    fn validate(&self) -> Result<()> {
        self.common().validate()
    }
}

/// Whether `key` (kebab-case) is one of [`CommonArgs`]' options.
pub fn is_common_key(key: &str) -> bool {
    CommonArgs::augment_args(clap::Command::new("common"))
        .get_arguments()
        .any(|a| a.get_id().as_str().replace('_', "-") == key)
}

/// The effective config as JSON (stored in checkpoints and reports).
pub fn effective_config<T: Serialize>(args: &T) -> Result<Value> {
    serde_json::to_value(args).context("serialising the run config")
}

/// Keys (kebab-case) given on the command line.
fn given_on_command_line(matches: &ArgMatches) -> BTreeSet<String> {
    matches
        .ids()
        .map(|id| id.as_str())
        .filter(|id| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.replace('_', "-"))
        .collect()
}

/// Reads a run file into (key, value, where) entries for `section`,
/// failing on keys `known` lacks.
fn run_file_entries<T: RunArgs>(
    path: &Path,
    known: &Map<String, Value>,
) -> Result<Vec<(String, Value, String)>> {
    let section = T::SECTION;
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
    let table: toml::Table = text.parse().with_context(|| format!("parsing {file}"))?;
    let (mut flat, mut own) = (Vec::new(), Vec::new());
    for (key, value) in table {
        match value {
            toml::Value::Table(t) if SECTIONS.contains(&key.as_str()) => {
                if key != section {
                    continue;
                }
                for (k, v) in t {
                    ensure!(
                        known.contains_key(&k),
                        "{file}: unknown key `{k}` in [{key}] (not an option of this command)"
                    );
                    let at = format!("{file}: [{key}] `");
                    check_number::<T>(&k, &v, &at)?;
                    own.push((k, serde_json::to_value(v)?, at));
                }
            }
            toml::Value::Table(_) => bail!(
                "{file}: unknown table [{key}] (tables are per command: {})",
                SECTIONS.join(", ")
            ),
            _ if T::skips_flat_key(&key, known.contains_key(&key)) => {}
            v => {
                ensure!(
                    known.contains_key(&key),
                    "{file}: unknown key `{key}` (not an option of this command; \
                     trainer-specific keys go in their [table])"
                );
                let at = format!("{file}: `");
                check_number::<T>(&key, &v, &at)?;
                flat.push((key, serde_json::to_value(v)?, at));
            }
        }
    }
    for scope in [&flat, &own] {
        for (key, _, at) in scope {
            if let Some(other) = partner(key) {
                ensure!(
                    !scope.iter().any(|(k, _, _)| k == other),
                    "{at}{key}`: `{other}` is set beside it; set one of them"
                );
            }
        }
    }
    // The table's choice of an EITHER pair drops the flat key's partner.
    flat.retain(|(k, _, _)| !partner(k).is_some_and(|p| own.iter().any(|(o, _, _)| o == p)));
    flat.extend(own); // the command's own table last: it wins
    Ok(flat)
}

/// A number in the run file goes through its flag's own value parser, so
/// the file and the command line accept the same range (see
/// [`super::bounds`]); this also catches `nan` and `inf`, which JSON (the
/// merge's format) cannot carry. `at` is the error's prefix up to the key.
fn check_number<T: Args>(key: &str, value: &toml::Value, at: &str) -> Result<()> {
    let text = match value {
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Integer(i) => i.to_string(),
        _ => return Ok(()),
    };
    let cmd = T::augment_args(clap::Command::new("engine"));
    let Some((arg, long)) = cmd
        .get_arguments()
        .filter(|a| a.get_id().as_str().replace('_', "-") == key)
        .find_map(|a| Some((a, a.get_long()?)))
    else {
        return Ok(());
    };
    // The option alone, parsed as if given as `--key=value`.
    let alone = clap::Command::new("engine").arg(arg.clone());
    match alone.try_get_matches_from(["engine".to_string(), format!("--{long}={text}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = std::error::Error::source(&e)
                .map_or_else(|| e.kind().to_string(), |s| s.to_string());
            bail!("{at}{key}` = {text}: {why}")
        }
    }
}

/// Merges the run file and a resumed checkpoint's config into `args` for
/// every option not given on the command line (see the module docs).
pub fn load_args<T: RunArgs>(args: T, matches: &ArgMatches) -> Result<T> {
    let out = merge_args(args, matches)?;
    out.validate()?;
    Ok(out)
}

/// [`load_args`] without the final validation: the merged layers as they
/// are (to decide what a command line asks for before checking it whole).
pub fn merge_args<T: RunArgs>(args: T, matches: &ArgMatches) -> Result<T> {
    let given = given_on_command_line(matches);
    let mut json = match effective_config(&args)? {
        Value::Object(m) => m,
        _ => bail!("args of a training command must be a struct"),
    };
    let known = json.clone();
    let mut from_file = BTreeSet::new();
    if let Some(path) = args.run_file().map(Path::to_path_buf) {
        for (key, value, at) in run_file_entries::<T>(&path, &known)? {
            ensure!(
                key != "config",
                "{at}config`: a run file cannot name another"
            );
            if given.contains(&key) || partner(&key).is_some_and(|p| given.contains(p)) {
                continue;
            }
            // Type-check each key alone so the error names it.
            let mut trial = json.clone();
            trial.insert(key.clone(), value.clone());
            serde_json::from_value::<T>(Value::Object(trial))
                .map_err(|e| anyhow!("{at}{key}`: {e}"))?;
            json.insert(key.clone(), value);
            from_file.insert(key);
        }
    }
    // --resume may itself come from the run file.
    let resume = json
        .get("resume")
        .and_then(Value::as_str)
        .map(PathBuf::from);
    let resumed = resume.is_some();
    if let Some(resume) = resume {
        let state = crate::train::run::read_state(&crate::train::run::checkpoint_dir(&resume)?)?;
        if let Value::Object(stored) = state.config {
            for (key, value) in stored {
                let set_above = |k: &str| given.contains(k) || from_file.contains(k);
                let keep = set_above(&key)
                    || partner(&key).is_some_and(set_above)
                    || NOT_RESUMED.contains(&key.as_str())
                    || !known.contains_key(&key);
                if !keep {
                    json.insert(key, value);
                }
            }
        }
        if known.contains_key("out") && !given.contains("out") && !from_file.contains("out") {
            let dir = crate::train::run::resumed_run_dir(&resume);
            json.insert("out".into(), serde_json::to_value(dir)?);
        }
    }
    serde_json::from_value(Value::Object(json)).context(if resumed {
        "merging flags, the run file and the resumed checkpoint's config"
    } else {
        "merging flags and the run file"
    })
}

/// Parses `argv` (program name first) as `T`'s flags and merges the layers:
/// the entry point for tests and for commands outside the main binary.
pub fn parse_args<T: RunArgs + Args + FromArgMatches>(argv: &[&str]) -> Result<T> {
    let cmd = T::augment_args(clap::Command::new("engine"));
    let matches = cmd.try_get_matches_from(argv)?;
    let args = T::from_arg_matches(&matches)?;
    load_args(args, &matches)
}
