//! Adapter choice and device creation: a real GPU first, then a software rasterizer, with
//! `VCORTEX_ADAPTER=<substring>` and `WGPU_BACKEND` as overrides.

use crate::error::{Error, Result};

/// What one adapter looks like from here, for `vcortex info` and error messages.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl AdapterSummary {
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.backend, self.device_type)
    }
}

/// Rank of a device type: discrete GPUs first, software last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Rank of a backend among equally good devices: the native compute APIs before GL.
fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

pub fn instance() -> wgpu::Instance {
    // WGPU_BACKEND (and the other WGPU_* switches) are read here.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::all();
    }
    wgpu::Instance::new(desc)
}

/// Every adapter the instance sees.
pub fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(instance_backends()))
}

fn instance_backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

/// Whether `VCORTEX_ADAPTER=wanted` names this adapter: a case-insensitive substring of its name,
/// or its backend exactly (`vulkan`, `gl`, `metal`, `dx12`), so `VCORTEX_ADAPTER=gl` picks the GL
/// adapter of a device that has both.
pub fn names_adapter(wanted: &str, info: &wgpu::AdapterInfo) -> bool {
    let w = wanted.to_lowercase();
    let summary = AdapterSummary::of(info);
    summary.backend == w || summary.name.to_lowercase().contains(&w)
}

/// Picks the adapter: `VCORTEX_ADAPTER` (see [`names_adapter`]) if set, otherwise the best-ranked
/// device.
pub fn choose(adapters: Vec<wgpu::Adapter>) -> Result<wgpu::Adapter> {
    choose_named(adapters, std::env::var("VCORTEX_ADAPTER").ok())
}

/// [`choose`] with the wanted adapter given (`None`: the best-ranked device) instead of read from
/// `VCORTEX_ADAPTER`; the Python package's `Context(adapter=...)`.
pub fn choose_named(adapters: Vec<wgpu::Adapter>, wanted: Option<String>) -> Result<wgpu::Adapter> {
    let seen = adapters.iter().map(|a| AdapterSummary::of(&a.get_info()).to_string()).collect::<Vec<_>>().join("; ");
    if adapters.is_empty() {
        let hint = match std::env::var("WGPU_BACKEND") {
            Ok(b) => format!(" (WGPU_BACKEND={b})"),
            Err(_) => String::new(),
        };
        return Err(Error::NoAdapter(hint));
    }
    let mut candidates = adapters;
    if let Some(wanted) = wanted {
        candidates.retain(|a| names_adapter(&wanted, &a.get_info()));
        if candidates.is_empty() {
            return Err(Error::AdapterNotFound { wanted, seen });
        }
    }
    candidates.sort_by_key(|a| {
        let i = a.get_info();
        (rank(i.device_type), backend_rank(i.backend))
    });
    Ok(candidates.remove(0))
}

/// The optional features the engine uses when the adapter has them.
pub fn wanted_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let want = wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    adapter.features() & want
}

#[cfg(test)]
mod tests {
    use super::names_adapter;

    fn info(name: &str, backend: wgpu::Backend) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo { name: name.into(), ..wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, backend) }
    }

    #[test]
    fn an_adapter_is_named_by_its_name_or_its_backend() {
        let vk = info("llvmpipe (LLVM 15.0.6, 256 bits)", wgpu::Backend::Vulkan);
        let gl = info("llvmpipe (LLVM 15.0.6, 256 bits)", wgpu::Backend::Gl);
        assert!(names_adapter("LLVMpipe", &vk) && names_adapter("llvmpipe", &gl));
        assert!(names_adapter("gl", &gl) && !names_adapter("gl", &vk));
        assert!(names_adapter("Vulkan", &vk) && !names_adapter("vulkan", &gl));
        assert!(!names_adapter("nvidia", &vk));
    }
}
