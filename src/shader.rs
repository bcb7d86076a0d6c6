//! Shader sources and their one include mechanism.
//!
//! Every `shaders/**/*.wgsl` file is embedded at build time (see build.rs) and
//! addressed by its stem: `"matmul"`, `"common/packed16"`.
//!
//! **Includes.** A kernel pulls in shared helpers from `shaders/common/` with a
//! line of the form
//!
//! ```text
//! //#include common/packed16
//! ```
//!
//! The line is a WGSL comment, so editors and formatters leave it alone. When a
//! kernel is loaded, each such line is replaced by the named file's source
//! (recursively, each file at most once). There is no other preprocessing: no
//! macros, no string templating. Specialisation is done with WGSL `override`
//! constants instead. naga validates the joined source (see the shader
//! validation test), which is exactly what the device compiles.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashSet;

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

const INCLUDE: &str = "//#include ";

/// The raw, unjoined text of a shader file.
pub fn raw_source(stem: &str) -> Result<&'static str> {
    SHADERS
        .iter()
        .find(|(s, _)| *s == stem)
        .map(|(_, src)| *src)
        .ok_or_else(|| anyhow!("no shader named `{stem}` under shaders/"))
}

/// All shader stems that are kernels (everything outside `common/`).
pub fn kernel_stems() -> impl Iterator<Item = &'static str> {
    SHADERS
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| !s.starts_with("common/"))
}

/// The kernel's source with every `//#include` expanded.
pub fn joined_source(stem: &str) -> Result<String> {
    let mut out = String::new();
    let mut seen = HashSet::new();
    join(stem, &mut out, &mut seen, 0)?;
    Ok(out)
}

fn join(stem: &str, out: &mut String, seen: &mut HashSet<String>, depth: usize) -> Result<()> {
    if depth > 8 {
        bail!("include nesting too deep at `{stem}`");
    }
    if !seen.insert(stem.to_string()) {
        return Ok(());
    }
    let src = raw_source(stem)?;
    for line in src.lines() {
        if let Some(inc) = line.trim_start().strip_prefix(INCLUDE) {
            let inc = inc.trim().trim_end_matches(".wgsl");
            join(inc, out, seen, depth + 1).with_context(|| format!("included from `{stem}`"))?;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(())
}

/// How a kernel's entry point uses one binding in group 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    Uniform,
    StorageRead,
    StorageReadWrite,
}

/// Parses and validates a joined kernel and lists, for `entry`, the group-0
/// bindings it actually touches. Pipelines get an explicit layout of exactly
/// these, so one shader file can hold forward and backward entry points that
/// use different buffers.
pub fn entry_bindings(stem: &str, source: &str, entry: &str) -> Result<Vec<(u32, BindingKind)>> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| anyhow!("{}", e.emit_to_string(source)))
        .with_context(|| format!("parsing shader `{stem}`"))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| anyhow!("{}", e.emit_to_string(source)))
    .with_context(|| format!("validating shader `{stem}`"))?;
    let index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry)
        .ok_or_else(|| anyhow!("shader `{stem}` has no entry point `{entry}`"))?;
    let ep_info = info.get_entry_point(index);
    let mut out = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if ep_info[handle].is_empty() {
            continue;
        }
        if binding.group != 0 {
            bail!("shader `{stem}`: only bind group 0 is used by engine");
        }
        let kind = match var.space {
            naga::AddressSpace::Uniform => BindingKind::Uniform,
            naga::AddressSpace::Storage { access } => {
                if access.contains(naga::StorageAccess::STORE) {
                    BindingKind::StorageReadWrite
                } else {
                    BindingKind::StorageRead
                }
            }
            other => bail!("shader `{stem}`: unsupported address space {other:?}"),
        };
        out.push((binding.binding, kind));
    }
    out.sort_by_key(|b| b.0);
    Ok(out)
}

/// Size and member offsets of the WGSL struct `name` in kernel `stem`, as
/// naga lays it out for uniform/storage use. Layout tests compare these with
/// the `#[repr(C)]` params structs that mirror them.
pub fn struct_layout(stem: &str, name: &str) -> Result<(u32, Vec<(String, u32)>)> {
    let source = joined_source(stem)?;
    let module = naga::front::wgsl::parse_str(&source)
        .map_err(|e| anyhow!("{}", e.emit_to_string(&source)))
        .with_context(|| format!("parsing shader `{stem}`"))?;
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| anyhow!("layout of `{stem}`: {e}"))?;
    for (handle, ty) in module.types.iter() {
        if ty.name.as_deref() != Some(name) {
            continue;
        }
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            bail!("`{name}` in `{stem}` is not a struct");
        };
        let _ = layouter[handle];
        let offsets = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
            .collect();
        return Ok((*span, offsets));
    }
    bail!("shader `{stem}` has no struct `{name}`")
}
