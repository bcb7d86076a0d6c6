//! Every shader in shaders/ goes through naga: parse, validate, then write
//! SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.1 (GL) for every
//! entry point, with override constants at their defaults. Files named
//! `*_subgroup` or `*_f16` skip GLSL: the GL backend has neither feature, and
//! the ops never select those variants there.

use engine::shader::{joined_source, kernel_stems, SHADERS};
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn translate(stem: &str) -> Result<usize, String> {
    let src = joined_source(stem).map_err(|e| format!("{e:#}"))?;
    let module = naga::front::wgsl::parse_str(&src).map_err(|e| e.emit_to_string(&src))?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| e.emit_to_string(&src))?;
    let gl_ok = !stem.ends_with("_subgroup") && !stem.ends_with("_f16");
    for ep in &module.entry_points {
        let stage_ep = Some((ep.stage, ep.name.as_str()));
        let (m, i) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            stage_ep,
            &Default::default(),
        )
        .map_err(|e| format!("{}: overrides: {e}", ep.name))?;
        let spv_opts = spv::PipelineOptions {
            shader_stage: ep.stage,
            entry_point: ep.name.clone(),
        };
        spv::write_vec(&m, &i, &spv::Options::default(), Some(&spv_opts))
            .map_err(|e| format!("{}: SPIR-V: {e}", ep.name))?;
        let msl_opts = msl::PipelineOptions {
            entry_point: Some((ep.stage, ep.name.clone())),
            ..Default::default()
        };
        msl::write_string(&m, &i, &msl::Options::default(), &msl_opts)
            .map_err(|e| format!("{}: MSL: {e}", ep.name))?;
        let mut hlsl_out = String::new();
        let hlsl_opts = hlsl::Options::default();
        let hlsl_pipe = hlsl::PipelineOptions {
            entry_point: Some((ep.stage, ep.name.clone())),
        };
        hlsl::Writer::new(&mut hlsl_out, &hlsl_opts, &hlsl_pipe)
            .write(&m, &i, None)
            .map_err(|e| format!("{}: HLSL: {e}", ep.name))?;
        if gl_ok {
            let mut glsl_out = String::new();
            let opts = glsl::Options {
                version: glsl::Version::Embedded {
                    version: 310,
                    is_webgl: false,
                },
                ..Default::default()
            };
            let pipe = glsl::PipelineOptions {
                shader_stage: ep.stage,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            glsl::Writer::new(&mut glsl_out, &m, &i, &opts, &pipe, Default::default())
                .and_then(|mut w| w.write())
                .map_err(|e| format!("{}: GLSL: {e}", ep.name))?;
        }
    }
    Ok(module.entry_points.len())
}

#[test]
fn every_shader_validates_and_translates_to_all_backends() {
    let mut failures = Vec::new();
    let mut count = 0;
    for stem in kernel_stems() {
        match translate(stem) {
            Ok(n) => count += n,
            Err(e) => failures.push(format!("shaders/{stem}.wgsl: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(count > 0, "no entry points found");
}

#[test]
fn every_shader_file_on_disk_is_embedded() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "wgsl") {
                let stem = p
                    .strip_prefix(&root)
                    .unwrap()
                    .with_extension("")
                    .to_string_lossy()
                    .replace('\\', "/");
                assert!(
                    SHADERS.iter().any(|(s, _)| *s == stem),
                    "{stem} is not embedded; rebuild"
                );
            }
        }
    }
}
