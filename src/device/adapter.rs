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
}

impl GpuOptions {
    /// Options from `ENGINE_DEVICE`, `WGPU_BACKEND` and `ENGINE_MAX_BINDING`.
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
        (type_rank(i.device_type), backend_rank(i.backend))
    });
    adapters
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
}
