//! The house's shape, checked on every test run: the layering of `src/`
//! (cli → train → models / rl / data → ops → tape → tensor → device → kernel),
//! import cycles, file sizes and the trainer folders.
//!
//! The import graph is read from the source text: every `use` tree and every
//! `crate::`/`super::`/`self::` path (and paths through a declared child
//! module) becomes an edge from the file to the deepest module file the path
//! names. Comments and string literals are ignored. It is a reading of the
//! text, not of rustc's resolution, which is enough for module-level structure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

#[path = "architecture/reader.rs"]
mod reader;
use reader::{expand, paths_in, resolve, strip};

fn src_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module path of a file: `src/ops/matmul/gemm.rs` → [ops, matmul, gemm].
fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Module = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

struct Graph {
    files: BTreeMap<Module, PathBuf>,
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

fn graph() -> Graph {
    let root = src_root();
    let mut list = Vec::new();
    rust_files(&root, &mut list);
    let files: BTreeMap<Module, PathBuf> = list
        .into_iter()
        .map(|f| (module_of(&root, &f), f))
        .collect();
    let names: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges = BTreeMap::new();
    for (m, f) in &files {
        let text = strip(&std::fs::read_to_string(f).unwrap());
        let to: BTreeSet<Module> = paths_in(&text)
            .iter()
            .filter_map(|p| resolve(&names, m, p))
            .filter(|t| t != m && !t.is_empty())
            .collect();
        edges.insert(m.clone(), to);
    }
    Graph { files, edges }
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<Module>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in &s.g.edges[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.files.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn show(m: &Module) -> String {
    m.join("/")
}

/// The layer of a top-level module; an import may only point to the same or a
/// lower layer. `data` and `models` share a layer (data builds `Tokens`).
fn layer(top: &str) -> usize {
    match top {
        "kernel" | "shader" | "pool" | "rng" => 0,
        "device" => 1,
        "tensor" => 2,
        "tape" => 3,
        "quant" => 4,
        "ops" => 5,
        "models" | "rl" | "data" => 6,
        "train" | "bench" => 7,
        "demo" => 8,
        "cli" => 9,
        other => panic!(
            "src/{other}: a new top-level module needs a layer in kernels-tests/architecture.rs"
        ),
    }
}

#[test]
fn no_import_cycle_crosses_a_top_level_module_or_spans_more_than_three_files() {
    let g = graph();
    let bad: Vec<String> = cycles(&g)
        .into_iter()
        .filter(|c| c.len() > 3 || c.iter().any(|m| m[0] != c[0][0]))
        .map(|c| c.iter().map(show).collect::<Vec<_>>().join(" <-> "))
        .collect();
    assert!(bad.is_empty(), "import cycles:\n{}", bad.join("\n"));
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, to) in &g.edges {
        if from.is_empty() {
            continue; // lib.rs / main.rs declare every module
        }
        for t in to {
            if layer(&t[0]) > layer(&from[0]) {
                bad.push(format!("{} -> {}", show(from), show(t)));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that point up the house:\n{}",
        bad.join("\n")
    );
}

#[test]
fn source_and_shader_files_stay_under_400_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut shaders = Vec::new();
    fn wgsl(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                wgsl(&p, out);
            } else if p.extension().is_some_and(|x| x == "wgsl") {
                out.push(p);
            }
        }
    }
    wgsl(&root.join("shaders"), &mut shaders);
    files.extend(shaders);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 400).then(|| format!("{} ({n} lines)", f.strip_prefix(root).unwrap().display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over 400 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn train_keeps_only_shared_files_flat_and_a_folder_per_trainer() {
    let dir = src_root().join("train");
    let flat = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .count();
    assert!(flat <= 12, "src/train/ has {flat} flat files (at most 12)");
    for trainer in ["ppo", "dpo", "sample"] {
        assert!(
            dir.join(trainer).join("mod.rs").exists(),
            "src/train/{trainer}/ is missing"
        );
    }
}

#[test]
fn the_reader_sees_what_it_is_meant_to() {
    // Self-check of the reader on known facts of this tree.
    let g = graph();
    let ops_mod: Module = vec!["ops".into()];
    assert!(g.files.contains_key(&ops_mod));
    let kernel: Module = vec!["kernel".into()];
    let device: Module = vec!["device".into()];
    assert!(g.edges[&device].contains(&kernel), "device uses kernel");
    let mut out = Vec::new();
    expand(&[], "super::{a, b::{c, d as e}}", &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(out[2], vec!["super", "b", "d"]);
}
