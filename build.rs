//! Embeds every `shaders/**/*.wgsl` file into the binary as a `(stem, source)`
//! table, so kernels load by name without touching the file system at run time;
//! and the files of the default models under `models/support-tiny/` (when they
//! exist: `engine pipeline --preset support-tiny` makes them), so the no-argument
//! `engine train-ppo` works from any directory and after `cargo install`.
use std::{env, fs, path::Path};

/// Every file under `dir` whose name passes `keep`, as (relative path, absolute path).
fn collect(dir: &Path, root: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, root, keep, out);
        } else if keep(&path) {
            let rel = path.strip_prefix(root).unwrap();
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, path.canonicalize().unwrap().display().to_string()));
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    println!("cargo:rerun-if-changed=shaders");
    let mut shaders = Vec::new();
    collect(
        &root,
        &root,
        &|p| p.extension().is_some_and(|e| e == "wgsl"),
        &mut shaders,
    );
    let mut code = String::from("/// Every WGSL file under shaders/, keyed by its path stem.\npub static SHADERS: &[(&str, &str)] = &[\n");
    for (rel, path) in &shaders {
        let stem = rel.strip_suffix(".wgsl").unwrap();
        code.push_str(&format!("    ({stem:?}, include_str!({path:?})),\n"));
    }
    code.push_str("];\n");
    let out_dir = env::var("OUT_DIR").unwrap();
    fs::write(Path::new(&out_dir).join("shaders.rs"), code).unwrap();

    // The default models: embedded only when the pipeline has produced them
    // (a build never fails for their absence; the command then says how to make them).
    let defaults = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/support-tiny");
    println!("cargo:rerun-if-changed=models/support-tiny");
    let mut files = Vec::new();
    if defaults.join("policy/config.json").is_file() {
        collect(&defaults, &defaults, &|_| true, &mut files);
        println!("cargo:rerun-if-changed=models/support-tiny/policy");
        println!("cargo:rerun-if-changed=models/support-tiny/reward");
        println!("cargo:rerun-if-changed=models/support-tiny/data");
    }
    let mut code = String::from("/// The files of models/support-tiny, by relative path (empty when absent at build time).\npub static DEFAULT_FILES: &[(&str, &[u8])] = &[\n");
    for (rel, path) in &files {
        code.push_str(&format!("    ({rel:?}, include_bytes!({path:?})),\n"));
    }
    code.push_str("];\n");
    fs::write(Path::new(&out_dir).join("defaults.rs"), code).unwrap();
}
