//! Command recording. Ops append dispatches to a [`Recorder`]; nothing reaches the GPU until
//! [`Recorder::submit`], which packs every op's parameters into one uniform ring, encodes all
//! dispatches into one command encoder (one compute pass for each run of dispatches; when timing,
//! the same passes with a timestamp before and after each dispatch, or one pass per dispatch
//! where the adapter cannot write timestamps inside a pass: [`TimingStructure`]), appends the
//! requested readbacks, and submits once
//! ([`Recorder::submit_in_parts`]: in parts, waiting for each, so a long run can show progress).
//!
//! Memory: a recorded chain keeps every buffer its items use until the submit. To keep a long
//! chain's peak down, [`Recorder::alloc`] gives an op's output a buffer that only the recorder
//! still holds (every tensor on it dropped, so nothing recorded later can read it): the items
//! run in order and wgpu puts a barrier between dispatches, so the earlier reads see the old
//! values and the new writes come after. Uploads never take such a buffer (their data would land
//! before the whole submission).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Access, BufferKind, Context, Kernel, PooledBuffer};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

struct Dispatch {
    label: String,
    kernel: Arc<Kernel>,
    /// Offset and size of this dispatch's parameters in the ring.
    params: (u64, u64),
    /// Buffer and bound size for bindings 1..; `None` binds the placeholder.
    buffers: Vec<Option<(Arc<PooledBuffer>, u64)>>,
    groups: [u32; 3],
}

enum Item {
    Dispatch(Dispatch),
    Copy { src: Arc<PooledBuffer>, dst: Arc<PooledBuffer>, bytes: u64 },
    Clear { dst: Arc<PooledBuffer>, bytes: u64 },
    Readback { src: Arc<PooledBuffer>, bytes: u64, slot: usize },
}

/// Identifies a readback requested with [`Recorder::read_back`], with the dtype and element count
/// of the tensor it reads, so [`Finished::f32`] decodes exactly what was read.
#[derive(Clone, Copy, Debug)]
pub struct ReadHandle {
    slot: usize,
    dtype: DType,
    len: usize,
}

impl ReadHandle {
    /// The element count of the tensor read back.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// GPU time of one recorded dispatch.
#[derive(Clone, Debug)]
pub struct Timing {
    pub label: String,
    pub ms: f64,
}

/// Where a timed recorder writes its timestamps (docs/bench.md, "What the timer measures").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingStructure {
    /// The passes of an untimed submit (one compute pass for each run of dispatches), with a
    /// timestamp written inside the pass before and after each dispatch
    /// (`ComputePass::write_timestamp`; needs `TIMESTAMP_QUERY_INSIDE_PASSES`).
    OnePass,
    /// One compute pass per dispatch, its timestamps at the pass's beginning and end.
    PassPerDispatch,
}

impl TimingStructure {
    /// Its name in reports: `one_pass` or `pass_per_dispatch`.
    pub fn name(self) -> &'static str {
        match self {
            TimingStructure::OnePass => "one_pass",
            TimingStructure::PassPerDispatch => "pass_per_dispatch",
        }
    }
}

/// What a submit gave back: the bytes of each readback, and per-dispatch times when timed.
pub struct Finished {
    reads: Vec<Vec<u8>>,
    pub timings: Option<Vec<Timing>>,
}

impl Finished {
    /// The raw bytes of a readback (exactly the tensor's elements).
    pub fn bytes(&self, h: ReadHandle) -> &[u8] {
        &self.reads[h.slot][..h.len * h.dtype.size()]
    }
    /// The f32 values of a readback (an F16 tensor's values are widened), decoded by the dtype and
    /// length the handle recorded: the values of the tensor that was read, whatever else is at hand.
    pub fn f32(&self, h: ReadHandle) -> Vec<f32> {
        crate::tensor::decode(h.dtype, h.len, &self.reads[h.slot])
    }
    /// Total GPU time of the dispatches whose label starts with `prefix`.
    pub fn ms_of(&self, prefix: &str) -> Option<f64> {
        self.timings.as_ref().map(|t| t.iter().filter(|x| x.label.starts_with(prefix)).map(|x| x.ms).sum())
    }
    /// Total GPU time of every dispatch.
    pub fn total_ms(&self) -> Option<f64> {
        self.timings.as_ref().map(|t| t.iter().map(|x| x.ms).sum())
    }
}

/// The most loop iterations one invocation may run in one dispatch, summed over all the loops
/// whose trip count depends on a parameter. Mesa's software rasterizers (lavapipe, llvmpipe) give
/// each invocation one counter of 65,535 loop iterations, shared by every loop of the kernel, nested
/// or not, and silently leave all loops once it runs out; half of that leaves room for the loops of
/// constant trip count a compiler may not unroll. Every op keeps its kernels within this budget (by
/// splitting a reduction across invocations or dispatches), so no result depends on the adapter.
pub const LOOP_BUDGET: u64 = 32_768;

/// Splits `0..total` into consecutive ranges of at most `max` (at least 1) items each.
pub fn chunks(total: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let max = max.max(1);
    (0..total.div_ceil(max)).map(move |i| (i * max, ((i + 1) * max).min(total)))
}

pub struct Recorder<'c> {
    ctx: &'c Context,
    items: Vec<Item>,
    ring: Vec<u8>,
    reads: usize,
    timed: Option<TimingStructure>,
    /// The storage buffers the items reference, each with its number of item references, and
    /// where each sits in that list (by address).
    held: Vec<(Arc<PooledBuffer>, usize)>,
    index: HashMap<usize, usize>,
    /// Output buffers taken from `held` instead of the pool (for tests and reports).
    reused: usize,
    /// The most loop iterations one invocation may run in one dispatch (see [`LOOP_BUDGET`]).
    loop_budget: u64,
}

impl<'c> Recorder<'c> {
    pub(crate) fn new(ctx: &'c Context) -> Self {
        Recorder {
            ctx,
            items: Vec::new(),
            ring: Vec::new(),
            reads: 0,
            timed: None,
            held: Vec::new(),
            index: HashMap::new(),
            reused: 0,
            loop_budget: ctx.max_loop_budget(),
        }
    }

    fn hold(&mut self, b: &Arc<PooledBuffer>) {
        let key = Arc::as_ptr(b) as usize;
        match self.index.get(&key) {
            Some(&i) => self.held[i].1 += 1,
            None => {
                self.index.insert(key, self.held.len());
                self.held.push((b.clone(), 1));
            }
        }
    }

    /// Recounts the held buffers from the items (after a rollback).
    fn rehold(&mut self) {
        self.held.clear();
        self.index.clear();
        let bufs: Vec<Arc<PooledBuffer>> = self
            .items
            .iter()
            .flat_map(|i| -> Vec<Arc<PooledBuffer>> {
                match i {
                    Item::Dispatch(d) => d.buffers.iter().flatten().map(|(b, _)| b.clone()).collect(),
                    Item::Copy { src, dst, .. } => vec![src.clone(), dst.clone()],
                    Item::Clear { dst, .. } => vec![dst.clone()],
                    Item::Readback { src, .. } => vec![src.clone()],
                }
            })
            .collect();
        for b in &bufs {
            self.hold(b);
        }
    }

    /// An uninitialised tensor for an op's output: a buffer of the right size class that only
    /// this recorder still holds (see the module docs), or a fresh one from the pool.
    pub fn alloc(&mut self, op: &'static str, shape: &[usize], dtype: crate::tensor::DType) -> Result<Tensor> {
        let bytes = Tensor::checked_bytes(self.ctx, op, shape, dtype)?;
        let class = self.ctx.pool.class_of(bytes.div_ceil(4) * 4);
        let dead = self.held.iter().find(|(b, refs)| {
            b.kind() == BufferKind::Storage && b.capacity() == class && Arc::strong_count(b) == refs + 1
        });
        if let Some((b, _)) = dead {
            let b = b.clone();
            self.reused += 1;
            return Ok(Tensor::on_storage(b, shape, dtype));
        }
        Tensor::alloc(self.ctx, op, shape, dtype)
    }

    /// How many outputs so far took a buffer the recording no longer needed.
    pub fn reused_buffers(&self) -> usize {
        self.reused
    }

    /// The most loop iterations (summed over every loop whose trip count a parameter sets) that one
    /// invocation of any kernel recorded here may run in one dispatch: the context's
    /// [`Context::max_loop_budget`] unless a test lowered it. Ops split longer work across
    /// invocations or dispatches.
    pub fn loop_budget(&self) -> u64 {
        self.loop_budget
    }

    /// Lowers (or restores) the loop budget of this recorder's ops, so that a test reaches the
    /// split paths of long reductions on small shapes. At least 16; never above the context's
    /// [`Context::max_loop_budget`].
    pub fn set_loop_budget(&mut self, iterations: u64) {
        self.loop_budget = iterations.clamp(16, self.ctx.max_loop_budget());
    }

    pub fn context(&self) -> &'c Context {
        self.ctx
    }

    /// Asks for GPU timestamps around every dispatch (when the adapter has timestamp queries), in
    /// the device's [`Context::timing_structure`].
    pub fn timed(mut self, on: bool) -> Self {
        self.timed = if on { self.ctx.timing_structure() } else { None };
        self
    }

    /// As [`timed(true)`](Self::timed), in the given structure where the adapter allows it
    /// ([`TimingStructure::PassPerDispatch`] wherever there are timestamps; `OnePass` falls back to
    /// it without `TIMESTAMP_QUERY_INSIDE_PASSES`): to compare the two.
    pub fn timed_as(mut self, structure: TimingStructure) -> Self {
        self.timed = self.ctx.timing_structure().map(|s| match structure {
            TimingStructure::OnePass => s,
            TimingStructure::PassPerDispatch => structure,
        });
        self
    }

    /// The structure this recorder's timestamps take, or `None` when it is not timed.
    pub fn timing(&self) -> Option<TimingStructure> {
        self.timed
    }

    /// Runs `f` as one unit: if it fails, everything it recorded is taken back, so a refused
    /// composite op (attention, a model's forward) leaves the recorder as it was.
    pub fn atomic<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let (items, ring, reads) = (self.items.len(), self.ring.len(), self.reads);
        let out = f(self);
        if out.is_err() {
            self.items.truncate(items);
            self.ring.truncate(ring);
            self.reads = reads;
            self.rehold();
        }
        out
    }

    /// Number of dispatches recorded so far.
    pub fn dispatch_count(&self) -> usize {
        self.items.iter().filter(|i| matches!(i, Item::Dispatch(_))).count()
    }

    /// Records one dispatch. `params` goes to binding 0; `tensors` to bindings 1.. in order
    /// (`None` for an absent optional tensor). The caller has validated everything else.
    pub fn dispatch(
        &mut self,
        label: impl Into<String>,
        kernel: Arc<Kernel>,
        params: &[u8],
        tensors: &[Option<&Tensor>],
        groups: [u32; 3],
    ) -> Result<()> {
        let label = label.into();
        let max = self.ctx.limits().max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::TooLarge {
                op: "dispatch",
                what: format!("{label} workgroups {groups:?}"),
                amount: *groups.iter().max().unwrap_or(&0) as u64,
                unit: "workgroups",
                limit: max as u64,
                limit_name: "max_compute_workgroups_per_dimension",
            });
        }
        if tensors.len() != kernel.bindings.len() {
            return Err(Error::Gpu {
                context: label,
                message: format!("{} tensors for {} bindings", tensors.len(), kernel.bindings.len()),
            });
        }
        let align = self.ctx.limits().min_uniform_buffer_offset_alignment as usize;
        let off = self.ring.len().div_ceil(align) * align;
        self.ring.resize(off, 0);
        self.ring.extend_from_slice(params);
        let size = (params.len().max(16)).div_ceil(16) * 16;
        self.ring.resize(off + size, 0);
        let buffers: Vec<Option<(Arc<PooledBuffer>, u64)>> =
            tensors.iter().map(|t| t.map(|t| (t.storage().clone(), t.binding_bytes()))).collect();
        if groups.iter().all(|&g| g > 0) {
            for b in buffers.iter().flatten() {
                self.hold(&b.0);
            }
            self.items.push(Item::Dispatch(Dispatch {
                label,
                kernel,
                params: (off as u64, size as u64),
                buffers,
                groups,
            }));
        }
        Ok(())
    }

    /// The labels of the recorded dispatches, in order (the kernel variant each op chose).
    pub fn labels(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Dispatch(d) => Some(d.label.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Records a buffer copy of `src` into `dst` (same byte size).
    pub fn copy(&mut self, src: &Tensor, dst: &Tensor) -> Result<()> {
        if Arc::ptr_eq(src.storage(), dst.storage()) {
            return Err(Error::param("copy", "destination", "shares its buffer with the source"));
        }
        if src.bytes() != dst.bytes() {
            return Err(Error::shape("copy", "destination", dst.shape(), format!("{:?}", src.shape())));
        }
        self.hold(src.storage());
        self.hold(dst.storage());
        self.items.push(Item::Copy {
            src: src.storage().clone(),
            dst: dst.storage().clone(),
            bytes: src.binding_bytes(),
        });
        Ok(())
    }

    /// Records zeroing `t` (all bits 0).
    pub fn clear(&mut self, t: &Tensor) {
        self.hold(t.storage());
        self.items.push(Item::Clear { dst: t.storage().clone(), bytes: t.binding_bytes() });
    }

    /// Asks for `t` to be read back to the host when this recorder is submitted.
    pub fn read_back(&mut self, t: &Tensor) -> ReadHandle {
        let slot = self.reads;
        self.reads += 1;
        self.hold(t.storage());
        self.items.push(Item::Readback { src: t.storage().clone(), bytes: t.binding_bytes(), slot });
        ReadHandle { slot, dtype: t.dtype(), len: t.numel() }
    }

    /// Sends everything recorded as one submission. Waits for the GPU only when something must come
    /// back (a readback or timings); otherwise the results stay on the device.
    pub fn submit(self) -> Result<Finished> {
        self.submit_parts(None, &mut |_, _| {})
    }

    /// As [`submit`](Self::submit), in parts so that a long run can show its progress: a part
    /// ends after each dispatch labelled `after` (a sampler step, say); each part is submitted and
    /// waited for, then `progress(parts done, parts)` is called (the parts counted by their
    /// `after` dispatches; what follows the last one comes with the readbacks). The same
    /// dispatches run in the same order on the same buffers, so the results are those of one
    /// submit, bit for bit.
    pub fn submit_in_parts(self, after: &str, mut progress: impl FnMut(usize, usize)) -> Result<Finished> {
        self.submit_parts(Some(after), &mut progress)
    }

    fn submit_parts(self, after: Option<&str>, progress: &mut dyn FnMut(usize, usize)) -> Result<Finished> {
        let ctx = self.ctx;
        let dev = &ctx.device;
        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = dev.push_error_scope(wgpu::ErrorFilter::OutOfMemory);

        let ring = if self.ring.is_empty() {
            None
        } else {
            let b = ctx.pool.get(dev, BufferKind::Uniform, self.ring.len() as u64);
            ctx.queue.write_buffer(b.buffer(), 0, &self.ring);
            Some(b)
        };
        let n_dispatch = self.items.iter().filter(|i| matches!(i, Item::Dispatch(_))).count();
        let timed = self.timed.filter(|_| n_dispatch > 0);
        // A query set holds at most 4096 queries: 2048 timed dispatches per set.
        const PER_SET: usize = 2048;
        let query_sets: Vec<wgpu::QuerySet> = if timed.is_some() {
            (0..n_dispatch.div_ceil(PER_SET))
                .map(|i| {
                    let n = (n_dispatch - i * PER_SET).min(PER_SET);
                    dev.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("vcortex timestamps"),
                        ty: wgpu::QueryType::Timestamp,
                        count: 2 * n as u32,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };

        let mut cache = ctx.bind_groups.lock().unwrap_or_else(|e| e.into_inner());
        let destroyed = ctx.pool.destroyed();
        if cache.destroyed != destroyed || cache.groups.len() > super::BindGroupCache::MAX {
            cache.groups.clear();
            cache.destroyed = destroyed;
        }
        let bind_groups: Vec<Option<wgpu::BindGroup>> = self
            .items
            .iter()
            .map(|it| match it {
                Item::Dispatch(d) => {
                    let ring = ring.as_ref().expect("a dispatch always writes the ring");
                    let key = super::BindKey {
                        kernel: Arc::as_ptr(&d.kernel) as usize,
                        entries: std::iter::once((ring.buffer().clone(), d.params.0, d.params.1))
                            .chain(d.buffers.iter().enumerate().map(|(i, b)| match b {
                                Some((buf, bytes)) => (buf.buffer().clone(), 0, *bytes),
                                None => (ctx.dummy[(d.kernel.bindings[i] == Access::ReadWrite) as usize].clone(), 0, 0),
                            }))
                            .collect(),
                    };
                    if let Some(g) = cache.groups.get(&key) {
                        let g = g.clone();
                        cache.hits += 1;
                        return Some(g);
                    }
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: ring.buffer(),
                            offset: d.params.0,
                            size: wgpu::BufferSize::new(d.params.1),
                        }),
                    }];
                    for (i, b) in d.buffers.iter().enumerate() {
                        let resource = match b {
                            Some((buf, bytes)) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: buf.buffer(),
                                offset: 0,
                                size: wgpu::BufferSize::new(*bytes),
                            }),
                            None => ctx.dummy[(d.kernel.bindings[i] == Access::ReadWrite) as usize].as_entire_binding(),
                        };
                        entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource });
                    }
                    let g = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(&d.label),
                        layout: &d.kernel.layout,
                        entries: &entries,
                    });
                    cache.groups.insert(key, g.clone());
                    Some(g)
                }
                _ => None,
            })
            .collect();
        drop(cache);

        let cuts = |it: &Item| matches!((it, after), (Item::Dispatch(d), Some(a)) if d.label == a);
        let parts = self.items.iter().filter(|it| cuts(it)).count();
        let mut done = 0;
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("vcortex") });
        let mut staging: Vec<Option<(Arc<PooledBuffer>, u64)>> = (0..self.reads).map(|_| None).collect();
        let mut labels = Vec::with_capacity(n_dispatch);
        let mut i = 0;
        while i < self.items.len() {
            match &self.items[i] {
                Item::Dispatch(_) => {
                    // A run of dispatches: one pass (timestamps inside it when timed), or one pass
                    // each when timed pass per dispatch. A part ends after its `after` dispatch.
                    let mut j = i;
                    while j < self.items.len() && matches!(self.items[j], Item::Dispatch(_)) {
                        j += 1;
                        if cuts(&self.items[j - 1]) {
                            break;
                        }
                    }
                    if timed == Some(TimingStructure::PassPerDispatch) {
                        for k in i..j {
                            let Item::Dispatch(d) = &self.items[k] else { unreachable!() };
                            let q = labels.len();
                            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                                label: Some(&d.label),
                                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                                    query_set: &query_sets[q / PER_SET],
                                    beginning_of_pass_write_index: Some(2 * (q % PER_SET) as u32),
                                    end_of_pass_write_index: Some(2 * (q % PER_SET) as u32 + 1),
                                }),
                            });
                            pass.set_pipeline(&d.kernel.pipeline);
                            pass.set_bind_group(0, bind_groups[k].as_ref(), &[]);
                            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
                            labels.push(d.label.clone());
                        }
                    } else {
                        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: Some("vcortex ops"),
                            timestamp_writes: None,
                        });
                        for k in i..j {
                            let Item::Dispatch(d) = &self.items[k] else { unreachable!() };
                            let q = labels.len();
                            if timed.is_some() {
                                pass.write_timestamp(&query_sets[q / PER_SET], 2 * (q % PER_SET) as u32);
                            }
                            pass.set_pipeline(&d.kernel.pipeline);
                            pass.set_bind_group(0, bind_groups[k].as_ref(), &[]);
                            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
                            if timed.is_some() {
                                pass.write_timestamp(&query_sets[q / PER_SET], 2 * (q % PER_SET) as u32 + 1);
                                labels.push(d.label.clone());
                            }
                        }
                    }
                    if cuts(&self.items[j - 1]) {
                        let part = std::mem::replace(
                            &mut enc,
                            dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("vcortex") }),
                        );
                        let index = ctx.queue.submit(Some(part.finish()));
                        dev.poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None }).map_err(
                            |e| Error::Gpu { context: "waiting for the GPU".into(), message: e.to_string() },
                        )?;
                        done += 1;
                        progress(done, parts);
                    }
                    i = j;
                }
                Item::Copy { src, dst, bytes } => {
                    enc.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, *bytes);
                    i += 1;
                }
                Item::Clear { dst, bytes } => {
                    enc.clear_buffer(dst.buffer(), 0, Some(*bytes));
                    i += 1;
                }
                Item::Readback { src, bytes, slot } => {
                    let st = ctx.pool.get(dev, BufferKind::Readback, *bytes);
                    enc.copy_buffer_to_buffer(src.buffer(), 0, st.buffer(), 0, *bytes);
                    staging[*slot] = Some((st, *bytes));
                    i += 1;
                }
            }
        }
        let stamps = if timed.is_some() {
            let n = 2 * n_dispatch as u64;
            let resolve = ctx.pool.get(dev, BufferKind::Resolve, n * 8);
            for (s, qs) in query_sets.iter().enumerate() {
                let count = (n_dispatch - s * PER_SET).min(PER_SET) as u32 * 2;
                enc.resolve_query_set(qs, 0..count, resolve.buffer(), (s * PER_SET * 2 * 8) as u64);
            }
            let st = ctx.pool.get(dev, BufferKind::Readback, n * 8);
            enc.copy_buffer_to_buffer(resolve.buffer(), 0, st.buffer(), 0, n * 8);
            Some((st, n * 8))
        } else {
            None
        };
        let index = ctx.queue.submit(Some(enc.finish()));
        drop(bind_groups);
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(Error::Gpu { context: "submit (out of memory)".into(), message: e.to_string() });
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu { context: "submit".into(), message: e.to_string() });
        }
        ctx.take_errors("submit")?;

        let mut reads = Vec::with_capacity(self.reads);
        let mut timings = None;
        if self.reads > 0 || stamps.is_some() {
            let mut pending: Vec<&(Arc<PooledBuffer>, u64)> = staging.iter().flatten().collect();
            if let Some(s) = &stamps {
                pending.push(s);
            }
            let (tx, rx) = std::sync::mpsc::channel();
            for (k, (b, bytes)) in pending.iter().enumerate() {
                let tx = tx.clone();
                b.buffer().slice(0..*bytes).map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send((k, r));
                });
            }
            drop(tx);
            dev.poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
                .map_err(|e| Error::Gpu { context: "waiting for the GPU".into(), message: e.to_string() })?;
            for (k, r) in rx.iter() {
                r.map_err(|e| Error::Gpu { context: format!("mapping readback {k}"), message: e.to_string() })?;
            }
            for (b, bytes) in staging.iter().flatten() {
                let view = b
                    .buffer()
                    .slice(0..*bytes)
                    .get_mapped_range()
                    .map_err(|e| Error::Gpu { context: "readback".into(), message: e.to_string() })?;
                let v = view.to_vec();
                drop(view);
                b.buffer().unmap();
                reads.push(v);
            }
            if let Some((b, bytes)) = &stamps {
                let view = b
                    .buffer()
                    .slice(0..*bytes)
                    .get_mapped_range()
                    .map_err(|e| Error::Gpu { context: "timestamps".into(), message: e.to_string() })?;
                let raw: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
                drop(view);
                b.buffer().unmap();
                let period = ctx.queue.get_timestamp_period() as f64;
                timings = Some(
                    labels
                        .into_iter()
                        .enumerate()
                        .map(|(q, label)| Timing {
                            label,
                            ms: raw[2 * q + 1].wrapping_sub(raw[2 * q]) as f64 * period / 1e6,
                        })
                        .collect(),
                );
            }
            ctx.take_errors("readback")?;
        }
        drop(ring);
        Ok(Finished { reads, timings })
    }
}
