//! Tensors on the device: a pooled buffer, a shape and a dtype, contiguous row-major (NCHW).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::runtime::{BufferKind, Context, PooledBuffer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    /// Half-precision storage; needs the adapter's shader-f16.
    F16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }
}

/// The most elements a tensor may hold (see `Tensor::checked_bytes`).
pub const MAX_ELEMENTS: usize = 1 << 31;

#[derive(Clone)]
pub struct Tensor {
    storage: Arc<PooledBuffer>,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {})", self.shape, self.dtype.name())
    }
}

/// Number of elements of a shape, refusing zero-sized dimensions and overflow.
pub fn numel(op: &'static str, what: &str, shape: &[usize]) -> Result<usize> {
    if shape.contains(&0) {
        return Err(Error::shape(op, what, shape, "no zero-sized dimension"));
    }
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::shape(op, what, shape, "a size that fits in memory"))
}

impl Tensor {
    /// An uninitialised tensor (pooled memory; an op overwrites all of it).
    pub fn empty(ctx: &Context, shape: &[usize], dtype: DType) -> Result<Tensor> {
        Self::alloc(ctx, "tensor", shape, dtype)
    }

    pub(crate) fn alloc(ctx: &Context, op: &'static str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = Self::checked_bytes(ctx, op, shape, dtype)?;
        let storage = ctx.pool.get(&ctx.device, BufferKind::Storage, bytes.div_ceil(4) * 4);
        Ok(Tensor { storage, shape: shape.to_vec(), dtype })
    }

    /// A tensor on an existing storage buffer (the recorder's reuse of dead buffers).
    pub(crate) fn on_storage(storage: Arc<PooledBuffer>, shape: &[usize], dtype: DType) -> Tensor {
        Tensor { storage, shape: shape.to_vec(), dtype }
    }

    /// The bytes a tensor of `shape` needs, refusing zero sizes and sizes past the device's limits.
    pub(crate) fn checked_bytes(ctx: &Context, op: &'static str, shape: &[usize], dtype: DType) -> Result<u64> {
        let n = numel(op, "tensor", shape)?;
        let bytes = (n as u64) * dtype.size() as u64;
        let limit = ctx.max_tensor_bytes();
        if bytes > limit {
            return Err(Error::TooLarge {
                op,
                what: format!("a {} tensor of shape {shape:?}", dtype.name()),
                amount: bytes,
                unit: "bytes",
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        // Kernels index elements with u32 and step loops by up to 256 past the last index: 2^31
        // elements keeps every index and every counter clear of wrapping.
        if n > MAX_ELEMENTS {
            return Err(Error::TooLarge {
                op,
                what: format!("a tensor of shape {shape:?}"),
                amount: n as u64,
                unit: "elements",
                limit: MAX_ELEMENTS as u64,
                limit_name: "u32 indices in the kernels",
            });
        }
        Ok(bytes)
    }

    /// Uploads f32 values.
    pub fn from_f32(ctx: &Context, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let n = numel("upload", "tensor", shape)?;
        if data.len() != n {
            return Err(Error::DataLength {
                op: "upload",
                what: "data".into(),
                got: data.len(),
                expected: n,
                shape: shape.to_vec(),
            });
        }
        let t = Self::alloc(ctx, "upload", shape, DType::F32)?;
        ctx.queue.write_buffer(t.storage.buffer(), 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    /// Uploads a host input `what` of `op` (a model's images, video, pupil positions, …): as
    /// [`Tensor::from_f32`], with the length checked against `shape` first so that a refusal
    /// names the op and the input (`DataLength`, or `Shape` for a size past counting).
    pub fn from_input(ctx: &Context, op: &'static str, what: &str, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
            Some(n) if n == data.len() => Self::from_f32(ctx, data, shape),
            Some(expected) => {
                Err(Error::DataLength { op, what: what.into(), got: data.len(), expected, shape: shape.to_vec() })
            }
            None => Err(Error::shape(op, what, shape, "a size that fits in memory")),
        }
    }

    /// Uploads f16 values as F16 storage (needs shader-f16 to be of use to kernels).
    pub fn from_f16(ctx: &Context, data: &[half::f16], shape: &[usize]) -> Result<Tensor> {
        if !ctx.capabilities().shader_f16 {
            return Err(Error::MissingFeature("shader-f16"));
        }
        let n = numel("upload", "tensor", shape)?;
        if data.len() != n {
            return Err(Error::DataLength {
                op: "upload",
                what: "data".into(),
                got: data.len(),
                expected: n,
                shape: shape.to_vec(),
            });
        }
        let t = Self::alloc(ctx, "upload", shape, DType::F16)?;
        let mut bytes: Vec<u8> = bytemuck::cast_slice(data).to_vec();
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        ctx.queue.write_buffer(t.storage.buffer(), 0, &bytes);
        Ok(t)
    }

    /// Reads the values back as f32 (one submit and wait).
    pub fn to_vec(&self, ctx: &Context) -> Result<Vec<f32>> {
        let mut rec = ctx.recorder();
        let h = rec.read_back(self);
        Ok(rec.submit()?.f32(h))
    }

    /// Same storage, another shape with as many elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = numel("reshape", "shape", shape)?;
        if n != self.numel() {
            return Err(Error::shape(
                "reshape",
                "new shape",
                shape,
                format!("{} elements like {:?}", self.numel(), self.shape),
            ));
        }
        Ok(Tensor { storage: self.storage.clone(), shape: shape.to_vec(), dtype: self.dtype })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }
    /// The bound size: bytes rounded up to 4.
    pub(crate) fn binding_bytes(&self) -> u64 {
        self.bytes().div_ceil(4) * 4
    }
    pub(crate) fn storage(&self) -> &Arc<PooledBuffer> {
        &self.storage
    }

    /// Host values from raw readback bytes.

    /// Refuses anything but F32 (every kernel computes in f32).
    pub(crate) fn expect_f32(&self, op: &'static str, what: &str) -> Result<()> {
        if self.dtype != DType::F32 {
            return Err(Error::Dtype {
                op,
                what: what.into(),
                got: self.dtype.name().into(),
                expected: "f32 (use ops::cast first)".into(),
            });
        }
        Ok(())
    }
}

/// The first `n` values of `dtype` in `raw`, as f32.
pub(crate) fn decode(dtype: DType, n: usize, raw: &[u8]) -> Vec<f32> {
    match dtype {
        DType::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(&raw[..4 * n]),
        DType::F16 => bytemuck::pod_collect_to_vec::<u8, half::f16>(&raw[..2 * n]).into_iter().map(f32::from).collect(),
    }
}
