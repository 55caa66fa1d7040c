//! The runtime: device and adapter, buffer pool, pipeline cache, command recording, GPU timing and
//! readback. Everything else talks to wgpu through here.

pub mod adapter;
pub mod pool;
mod recorder;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use adapter::AdapterSummary;
pub use pool::{BufferKind, Pool, PoolStats, PooledBuffer};
pub use recorder::{chunks, Finished, ReadHandle, Recorder, Timing, TimingStructure, LOOP_BUDGET};

use crate::error::{Error, Result};
use crate::shaders;

/// How a kernel binds a buffer. Binding 0 is always the op's parameter block (uniform); the
/// tensors follow at 1, 2, … in the order the op lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

/// What identifies a compiled pipeline: the shader family, the entry point, the override
/// constants (name and value, as f64 bits so the key hashes) and the binding list.
///
/// The constants are kept sorted by name, one value per name, so the same overrides given in any
/// order are one key (and one compiled pipeline).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub shader: &'static str,
    pub entry: &'static str,
    constants: Vec<(&'static str, u64)>,
    pub bindings: Vec<Access>,
}

impl PipelineKey {
    pub fn new(shader: &'static str, entry: &'static str, bindings: &[Access]) -> Self {
        PipelineKey { shader, entry, constants: Vec::new(), bindings: bindings.to_vec() }
    }
    /// Sets an override constant of this key's shader family (or of common.wgsl) by its typed key
    /// ([`shaders::overrides`]). The constants stay sorted by name; setting a name again replaces
    /// its value (the last `with` wins), so a key never holds one name twice.
    pub fn with(mut self, o: shaders::Override, value: f64) -> Self {
        debug_assert!(
            o.family == self.shader || o.family == "common",
            "override {}::{} set on a {} key",
            o.family,
            o.name,
            self.shader
        );
        let (name, bits) = (o.name, value.to_bits());
        match self.constants.binary_search_by(|(n, _)| n.cmp(&name)) {
            Ok(i) => self.constants[i].1 = bits,
            Err(i) => self.constants.insert(i, (name, bits)),
        }
        self
    }

    /// Sets a `bool` override.
    pub fn flag(self, o: shaders::Override, on: bool) -> Self {
        self.with(o, on as u8 as f64)
    }

    /// The override constants, sorted by name, one value per name.
    pub fn constants(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.constants.iter().map(|&(n, bits)| (n, f64::from_bits(bits)))
    }
}

/// What a bind group binds: its kernel (by address: kernels live as long as the context) and,
/// per binding, the buffer, offset and size.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct BindKey {
    pub kernel: usize,
    pub entries: Vec<(wgpu::Buffer, u64, u64)>,
}

/// The bind groups earlier submits built. Emptied whenever the pool has destroyed a buffer since
/// it was filled (a cached group would keep the buffer's memory), and when it passes
/// [`BindGroupCache::MAX`] entries. A destroyed buffer never returns from the pool, so a stale
/// entry can never match a live dispatch.
#[derive(Default)]
pub(crate) struct BindGroupCache {
    pub destroyed: u64,
    pub groups: HashMap<BindKey, wgpu::BindGroup>,
    pub hits: u64,
}

impl BindGroupCache {
    pub const MAX: usize = 4096;
}

/// A compiled kernel: pipeline plus its explicit bind group layout.
pub struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) bindings: Vec<Access>,
}

/// The optional features the engine found and enabled.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    pub timestamps: bool,
    /// Timestamps written inside a compute pass (`TIMESTAMP_QUERY_INSIDE_PASSES`): a timed
    /// recorder then keeps the untimed pass structure ([`TimingStructure::OnePass`]).
    pub timestamps_inside_passes: bool,
    pub shader_f16: bool,
    pub subgroups: bool,
}

/// One device and everything that lives as long as it: the engine's handle.
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    adapter: AdapterSummary,
    limits: wgpu::Limits,
    caps: Capabilities,
    pub(crate) pool: Pool,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    kernels: Mutex<HashMap<PipelineKey, Arc<Kernel>>>,
    /// Bind groups of earlier submits, reused when a dispatch binds the same kernel to the same
    /// buffer ranges (a model's repeated forward).
    pub(crate) bind_groups: Mutex<BindGroupCache>,
    /// Bound where an optional tensor is absent: one for read-only slots, one for read-write
    /// slots (wgpu refuses one buffer in both within a dispatch).
    pub(crate) dummy: [wgpu::Buffer; 2],
    errors: Arc<Mutex<Vec<String>>>,
    checks: ShaderChecks,
}

/// The runtime checks compiled into the kernels (`VCORTEX_SHADER_CHECKS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShaderChecks {
    /// The default: no loop-bounding counters and no index clamps (every index of every kernel is
    /// bounded by the host's shape checks, and every loop by its uniform parameters), but integer
    /// division still guarded. The counters wgpu adds to each loop otherwise cost instructions in
    /// the innermost loops and keep the driver from unrolling them.
    Trusted,
    /// All of wgpu's checks (`VCORTEX_SHADER_CHECKS=full`): for chasing a kernel bug.
    Full,
}

impl ShaderChecks {
    fn from_env() -> ShaderChecks {
        Self::from_setting(std::env::var("VCORTEX_SHADER_CHECKS").ok().as_deref())
    }

    /// What a value of `VCORTEX_SHADER_CHECKS` selects: `full` (exactly) is [`ShaderChecks::Full`];
    /// unset or anything else is [`ShaderChecks::Trusted`].
    pub fn from_setting(value: Option<&str>) -> ShaderChecks {
        match value {
            Some("full") => ShaderChecks::Full,
            _ => ShaderChecks::Trusted,
        }
    }

    fn runtime_checks(self) -> wgpu::ShaderRuntimeChecks {
        match self {
            ShaderChecks::Full => wgpu::ShaderRuntimeChecks::checked(),
            ShaderChecks::Trusted => wgpu::ShaderRuntimeChecks {
                bounds_checks: false,
                force_loop_bounding: false,
                int_div_checks: true,
                ..wgpu::ShaderRuntimeChecks::checked()
            },
        }
    }
}

const DEFAULT_POOL_BUDGET: u64 = 1 << 30;

impl Context {
    /// Opens the best adapter (see [`adapter::choose`]).
    pub fn new() -> Result<Context> {
        let instance = adapter::instance();
        let chosen = adapter::choose(adapter::enumerate(&instance))?;
        Self::with_adapter(chosen)
    }

    /// Opens a device on the given adapter with its real limits and the optional features the
    /// engine can use.
    pub fn with_adapter(adapter: wgpu::Adapter) -> Result<Context> {
        let info = adapter.get_info();
        let summary = AdapterSummary::of(&info);
        let features = adapter::wanted_features(&adapter);
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("vcortex"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device { adapter: summary.to_string(), reason: e.to_string() })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let caps = Capabilities {
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            timestamps_inside_passes: features
                .contains(wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
        };
        let budget = std::env::var("VCORTEX_POOL_BUDGET_MB")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(|mb| mb << 20)
            .unwrap_or(DEFAULT_POOL_BUDGET);
        let pool = Pool::new(limits.max_buffer_size, budget);
        let dummy = [0, 1].map(|_| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("vcortex absent-tensor placeholder"),
                size: 256,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        });
        Ok(Context {
            device,
            queue,
            adapter: summary,
            limits,
            caps,
            pool,
            modules: Mutex::new(HashMap::new()),
            kernels: Mutex::new(HashMap::new()),
            bind_groups: Mutex::new(BindGroupCache::default()),
            dummy,
            errors,
            checks: ShaderChecks::from_env(),
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }
    /// How a timed recorder on this device places its timestamps: inside the untimed pass
    /// structure where the adapter allows it, else one pass per dispatch; `None` without timestamp
    /// queries (the bench then times the wall clock).
    pub fn timing_structure(&self) -> Option<TimingStructure> {
        match (self.caps.timestamps, self.caps.timestamps_inside_passes) {
            (false, _) => None,
            (true, true) => Some(TimingStructure::OnePass),
            (true, false) => Some(TimingStructure::PassPerDispatch),
        }
    }
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }
    /// Releases the pool's idle buffers.
    pub fn trim_pool(&self) {
        self.pool.trim()
    }
    /// Sets how many bytes of idle buffers the pool may keep.
    pub fn set_pool_budget(&self, bytes: u64) {
        self.pool.set_budget(bytes)
    }
    /// A new recorder: ops record into it, `submit` sends them to the GPU as one submission.
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder::new(self)
    }

    /// Largest byte size one tensor may have on this device (a storage binding).
    pub fn max_tensor_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// Errors wgpu reported outside an error scope since the last check.
    pub(crate) fn take_errors(&self, context: &str) -> Result<()> {
        let mut v = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if v.is_empty() {
            return Ok(());
        }
        let message = v.drain(..).collect::<Vec<_>>().join("; ");
        Err(Error::Gpu { context: context.to_string(), message })
    }

    /// The kernel for `key`, compiled once per device.
    /// The runtime checks the kernels are compiled with.
    pub fn shader_checks(&self) -> ShaderChecks {
        self.checks
    }

    /// The loop budget of this context's recorders: [`LOOP_BUDGET`] for kernels compiled with the
    /// trusted checks, an eighth of it with all of wgpu's checks (`VCORTEX_SHADER_CHECKS=full`). The
    /// loop counters wgpu then adds keep the driver from unrolling a kernel's small constant loops,
    /// so a step of a loop costs more iterations of the software rasterizers' shared counter than
    /// the host's count assumes (measured on lavapipe: the scalar matmul went wrong at K = 12,481 in
    /// one dispatch, within the trusted budget).
    pub fn max_loop_budget(&self) -> u64 {
        match self.checks {
            ShaderChecks::Trusted => LOOP_BUDGET,
            ShaderChecks::Full => LOOP_BUDGET / 8,
        }
    }

    pub fn kernel(&self, key: &PipelineKey) -> Result<Arc<Kernel>> {
        if let Some(k) = self.kernels.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(k.clone());
        }
        let src = shaders::get(key.shader).ok_or_else(|| Error::Gpu {
            context: "pipeline cache".into(),
            message: format!("no shader family named {}", key.shader),
        })?;
        if src.needs_f16 && !self.caps.shader_f16 {
            return Err(Error::MissingFeature("shader-f16"));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            modules
                .entry(key.shader)
                .or_insert_with(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(key.shader),
                        source: wgpu::ShaderSource::Wgsl(src.composed().into()),
                    };
                    // SAFETY: the kernels are this crate's own WGSL. Every index they form is
                    // bounded by the shapes the ops check before dispatching (workgroup arrays by
                    // the capacities the host checks), and every loop runs to a bound taken from
                    // its uniform parameters, so wgpu's index clamps and loop counters guard
                    // nothing; integer division keeps its guard. VCORTEX_SHADER_CHECKS=full
                    // restores every check.
                    unsafe { self.device.create_shader_module_trusted(desc, self.checks.runtime_checks()) }
                })
                .clone()
        };
        let entries: Vec<wgpu::BindGroupLayoutEntry> = std::iter::once(wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .chain(key.bindings.iter().enumerate().map(|(i, a)| wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: *a == Access::Read },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }))
        .collect();
        let label = format!("{}::{}", key.shader, key.entry);
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&label), entries: &entries });
        let pl = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants: Vec<(&str, f64)> = key.constants().collect();
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu { context: format!("compiling {label}"), message: e.to_string() });
        }
        let kernel = Arc::new(Kernel { pipeline, layout, bindings: key.bindings.clone() });
        self.kernels.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), kernel.clone());
        Ok(kernel)
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: None })
            .map_err(|e| Error::Gpu { context: "waiting for the GPU".into(), message: e.to_string() })?;
        self.take_errors("wait")
    }

    /// Bind groups reused from an earlier submit so far (for tests of the cache).
    pub fn reused_bind_groups(&self) -> u64 {
        self.bind_groups.lock().unwrap_or_else(|e| e.into_inner()).hits
    }

    /// Number of compiled pipelines (for tests of the cache).
    pub fn cached_kernels(&self) -> usize {
        self.kernels.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Splits a 1-D workgroup count over x and y so neither passes the per-dimension limit.
    /// Kernels recover the linear index as `wid.x + wid.y * nwg.x`.
    pub fn grid_1d(&self, groups: u64, op: &'static str) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            return Ok([groups.max(1) as u32, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(Error::TooLarge {
                op,
                what: "dispatch".into(),
                amount: groups,
                unit: "workgroups",
                limit: max * max,
                limit_name: "max_compute_workgroups_per_dimension squared",
            });
        }
        let x = groups.div_ceil(y);
        Ok([x as u32, y as u32, 1])
    }
}
