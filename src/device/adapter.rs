//! Which adapter a [`Gpu`](super::Gpu) opens: options from flags and the
//! environment, backend names, and the ranking of adapters.

use anyhow::{anyhow, bail, Context, Result};

/// How to pick and configure the adapter.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter name (`--device`, `ENGINE_DEVICE`).
    pub device_filter: Option<String>,
    /// Restrict to these backends (`--backend`, `WGPU_BACKEND`).
    pub backends: Option<wgpu::Backends>,
    /// Pretend the device's max storage binding is this many bytes. Tests use it
    /// to prove that ops chunk tensors that exceed one binding.
    pub max_binding_override: Option<u64>,
    /// Fill every tensor's storage with all-ones bits (NaN as f32 and f16,
    /// -1 as i32) when it is handed out, fresh or reused (`ENGINE_POISON=1`).
    /// A kernel that reads storage nothing wrote, even only to multiply it by
    /// zero, then gives NaN instead of whatever the buffer last held; the
    /// tests run trainers this way against an unpoisoned device.
    pub poison_allocations: bool,
}

impl GpuOptions {
    /// Options from `ENGINE_DEVICE`, `WGPU_BACKEND`, `ENGINE_MAX_BINDING` and
    /// `ENGINE_POISON`.
    pub fn from_env() -> Result<Self> {
        let backends = match std::env::var("WGPU_BACKEND") {
            Ok(s) if !s.trim().is_empty() => Some(parse_backends(&s)?),
            _ => None,
        };
        let max_binding_override = match std::env::var("ENGINE_MAX_BINDING") {
            Ok(s) => Some(
                s.trim()
                    .parse()
                    .with_context(|| format!("ENGINE_MAX_BINDING={s:?}"))?,
            ),
            Err(_) => None,
        };
        Ok(Self {
            device_filter: std::env::var("ENGINE_DEVICE")
                .ok()
                .filter(|s| !s.is_empty()),
            backends,
            max_binding_override,
            poison_allocations: std::env::var("ENGINE_POISON")
                .is_ok_and(|v| !v.is_empty() && v != "0"),
        })
    }
}

/// Parses `vulkan`, `metal`, `dx12`, `gl` (comma-separated lists allowed).
pub fn parse_backends(s: &str) -> Result<wgpu::Backends> {
    let mut out = wgpu::Backends::empty();
    for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        out |= match part.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            other => bail!("unknown backend `{other}` (expected vulkan, metal, dx12 or gl)"),
        };
    }
    Ok(out)
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
        wgpu::DeviceType::Cpu => 3,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    // Mesa's EGL complains on every call when this is unset (headless CI).
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    desc.flags = wgpu::InstanceFlags::empty();
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu can see, best first.
pub fn list_adapters(backends: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    let inst = instance(backends.unwrap_or(wgpu::Backends::all()));
    let mut adapters =
        pollster::block_on(inst.enumerate_adapters(backends.unwrap_or(wgpu::Backends::all())));
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        (
            compute_support(&i).is_err(),
            type_rank(i.device_type),
            backend_rank(i.backend),
        )
    });
    adapters
}

/// Whether wgpu can build compute pipelines on this adapter; the reason when not.
///
/// wgpu's GL backend asks EGL for a desktop OpenGL 3.3 context. Mesa answers
/// with its newest (4.5), but NVIDIA's driver gives exactly 3.3, whose GLSL
/// has no compute shaders. wgpu still reports compute support there (through
/// GL_ARB_compute_shader), and then fails every pipeline, so the GL version
/// string (`driver_info`: "3.3.0 NVIDIA ..", "4.5 (Core Profile) Mesa ..",
/// "OpenGL ES 3.2 ..") is the test: desktop GL needs 4.3, GLES 3.1.
pub fn compute_support(i: &wgpu::AdapterInfo) -> std::result::Result<(), String> {
    if i.backend != wgpu::Backend::Gl {
        return Ok(());
    }
    let (es, rest) = match i.driver_info.trim().strip_prefix("OpenGL ES ") {
        Some(r) => (true, r),
        None => (false, i.driver_info.trim()),
    };
    let mut nums = rest
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>());
    let version = match (nums.next(), nums.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => return Ok(()), // unknown format: let wgpu decide
    };
    let (need, api) = if es {
        ((3, 1), "OpenGL ES")
    } else {
        ((4, 3), "OpenGL")
    };
    if version >= need {
        return Ok(());
    }
    Err(format!(
        "wgpu opened an {api} {}.{} context on it, and compute shaders need {api} {}.{}{}",
        version.0,
        version.1,
        need.0,
        need.1,
        if es {
            ""
        } else {
            " (NVIDIA's EGL gives wgpu 3.3 whatever the card supports)"
        }
    ))
}

/// The best adapter `opts` allows: by name filter, else the first in rank
/// order (discrete, integrated, others, CPU implementations).
pub(super) fn choose(opts: &GpuOptions) -> Result<wgpu::Adapter> {
    let adapters = list_adapters(opts.backends);
    if adapters.is_empty() {
        bail!(
            "no GPU adapter found{}. On a machine without a GPU driver, install Mesa: the GL \
                 backend works with libegl1-mesa, and `apt-get install mesa-vulkan-drivers` adds \
                 the faster Vulkan lavapipe",
            opts.backends
                .map(|b| format!(" for backends {b:?}"))
                .unwrap_or_default()
        );
    }
    let names: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
    let adapter = match &opts.device_filter {
        Some(f) => adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&f.to_lowercase()))
            .ok_or_else(|| {
                anyhow!(
                    "no adapter name contains `{f}`; available: {}",
                    names.join("; ")
                )
            })?,
        None => adapters.into_iter().next().unwrap(),
    };
    // Adapters without compute sort last, so this one is the only choice left.
    if let Err(why) = compute_support(&adapter.get_info()) {
        bail!(
            "adapter {} cannot run compute shaders: {why}. Pick another backend (`--backend \
             vulkan`, or unset WGPU_BACKEND) or adapter; available: {}",
            describe(&adapter.get_info()),
            names.join("; ")
        );
    }
    Ok(adapter)
}

/// `name (backend, type)`, the adapter line printed by the CLI and benches.
pub fn describe(i: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, driver {} {})",
        i.name, i.backend, i.device_type, i.driver, i.driver_info
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse() {
        assert_eq!(parse_backends("gl").unwrap(), wgpu::Backends::GL);
        assert_eq!(
            parse_backends("vulkan,gl").unwrap(),
            wgpu::Backends::VULKAN | wgpu::Backends::GL
        );
        assert!(parse_backends("cuda").is_err());
    }

    #[test]
    fn gl_contexts_without_compute_are_named() {
        let gl = |driver_info: &str| wgpu::AdapterInfo {
            driver_info: driver_info.into(),
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Gl)
        };
        assert!(compute_support(&gl("4.5 (Core Profile) Mesa 22.3.6")).is_ok());
        assert!(compute_support(&gl("4.3.0 NVIDIA 580.159.04")).is_ok());
        assert!(compute_support(&gl("OpenGL ES 3.1 Mesa 22.3.6")).is_ok());
        assert!(compute_support(&gl("something else")).is_ok());
        let why = compute_support(&gl("3.3.0 NVIDIA 580.159.04")).unwrap_err();
        assert!(why.contains("OpenGL 3.3") && why.contains("4.3"), "{why}");
        assert!(compute_support(&gl("OpenGL ES 3.0 Mesa")).is_err());
        let vk = wgpu::AdapterInfo {
            backend: wgpu::Backend::Vulkan,
            driver_info: "3.3".into(),
            ..gl("")
        };
        assert!(compute_support(&vk).is_ok());
    }
}
