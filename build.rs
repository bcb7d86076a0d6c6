//! Embeds every `shaders/**/*.wgsl` file into the binary as a `(stem, source)`
//! table, so kernels load by name without touching the file system at run time.
use std::{env, fs, path::Path};

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let stem = rel.to_string_lossy().replace('\\', "/");
            out.push((stem, path.canonicalize().unwrap().display().to_string()));
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    println!("cargo:rerun-if-changed=shaders");
    let mut shaders = Vec::new();
    collect(&root, &root, &mut shaders);
    let mut code = String::from("/// Every WGSL file under shaders/, keyed by its path stem.\npub static SHADERS: &[(&str, &str)] = &[\n");
    for (stem, path) in &shaders {
        code.push_str(&format!("    ({stem:?}, include_str!({path:?})),\n"));
    }
    code.push_str("];\n");
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("shaders.rs"),
        code,
    )
    .unwrap();
}
