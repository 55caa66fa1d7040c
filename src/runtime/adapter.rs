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

/// Picks the adapter: `VCORTEX_ADAPTER` (a case-insensitive substring of the name) if set,
/// otherwise the best-ranked device.
pub fn choose(adapters: Vec<wgpu::Adapter>) -> Result<wgpu::Adapter> {
    let seen = adapters.iter().map(|a| AdapterSummary::of(&a.get_info()).to_string()).collect::<Vec<_>>().join("; ");
    if adapters.is_empty() {
        let hint = match std::env::var("WGPU_BACKEND") {
            Ok(b) => format!(" (WGPU_BACKEND={b})"),
            Err(_) => String::new(),
        };
        return Err(Error::NoAdapter(hint));
    }
    let mut candidates = adapters;
    if let Ok(wanted) = std::env::var("VCORTEX_ADAPTER") {
        let w = wanted.to_lowercase();
        candidates.retain(|a| a.get_info().name.to_lowercase().contains(&w));
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
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    adapter.features() & want
}
