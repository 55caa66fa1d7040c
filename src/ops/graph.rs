//! Message passing on a skeleton graph (shaders/graph.wgsl), the cGNF's conditioner and context
//! embedding (docs/ops.md, cGNF message passing): a CondGCN layer's sum aggregation and a DenseSAGE layer's masked,
//! row-normalised dense aggregation.

use crate::error::{Error, Result};
use crate::runtime::{Access, Context, PipelineKey, Recorder};
use crate::shaders::overrides::graph as ov;
use crate::tensor::{DType, Tensor};

/// A skeleton: J joints and undirected edges, as neighbour lists (each edge serves both
/// directions, as the `x→x` and reversed `x←x` relations of propose's CondGCN share one weight).
#[derive(Clone, Debug, PartialEq)]
pub struct Skeleton {
    joints: usize,
    /// offsets [J + 1], then the neighbour joints, then [J] root-child flags (the layout of the
    /// kernel's table).
    table: Vec<u32>,
}

impl Skeleton {
    /// From directed (src, dst) pairs, each undirected edge listed once. Refuses joints out of
    /// range, self loops and an edge listed twice (in either direction).
    pub fn new(joints: usize, edges: &[[usize; 2]]) -> Result<Skeleton> {
        const OP: &str = "skeleton";
        if joints == 0 || joints > super::MAX_GEOMETRY {
            return Err(Error::param(OP, "joints", format!("{joints} must be in 1..={}", super::MAX_GEOMETRY)));
        }
        let mut nbr: Vec<Vec<u32>> = vec![Vec::new(); joints];
        for &[a, b] in edges {
            if a >= joints || b >= joints {
                return Err(Error::param(OP, "edges", format!("edge ({a}, {b}) names a joint past {}", joints - 1)));
            }
            if a == b {
                return Err(Error::param(OP, "edges", format!("edge ({a}, {b}) is a self loop")));
            }
            if nbr[a].contains(&(b as u32)) {
                return Err(Error::param(OP, "edges", format!("edge ({a}, {b}) is listed twice")));
            }
            nbr[a].push(b as u32);
            nbr[b].push(a as u32);
        }
        let mut table = Vec::with_capacity(joints + 1 + 2 * edges.len());
        let mut off = 0u32;
        for n in &nbr {
            table.push(off);
            off += n.len() as u32;
        }
        table.push(off);
        for n in &nbr {
            table.extend(n);
        }
        table.extend(std::iter::repeat_n(0, joints));
        Ok(Skeleton { joints, table })
    }

    /// Marks the joints that receive the root node's message (propose's `r→x` edges). Refuses a
    /// joint out of range or listed twice.
    pub fn with_root_children(mut self, children: &[usize]) -> Result<Skeleton> {
        let base = self.table.len() - self.joints;
        for &c in children {
            if c >= self.joints {
                return Err(Error::param(
                    "skeleton",
                    "root children",
                    format!("joint {c} is past {}", self.joints - 1),
                ));
            }
            if self.table[base + c] != 0 {
                return Err(Error::param("skeleton", "root children", format!("joint {c} is listed twice")));
            }
            self.table[base + c] = 1;
        }
        Ok(self)
    }

    /// Whether joint j receives the root's message.
    pub fn is_root_child(&self, j: usize) -> bool {
        j < self.joints && self.table[self.table.len() - self.joints + j] != 0
    }

    pub fn joints(&self) -> usize {
        self.joints
    }

    /// The neighbours of joint j (none past the last joint).
    pub fn neighbours(&self, j: usize) -> &[u32] {
        if j >= self.joints {
            return &[];
        }
        let (a, b) = (self.table[j] as usize, self.table[j + 1] as usize);
        &self.table[self.joints + 1 + a..self.joints + 1 + b]
    }

    /// The skeleton with its neighbour table on the device, as the aggregation kernels read it.
    pub fn upload(&self, ctx: &Context) -> Result<DeviceSkeleton> {
        let table = Tensor::from_f32(ctx, bytemuck::cast_slice(&self.table), &[self.table.len()])?;
        Ok(DeviceSkeleton { skeleton: self.clone(), table })
    }
}

/// A [`Skeleton`] and its neighbour table on the device (u32 bits in an f32 tensor). The table is
/// only ever the skeleton's own, so the kernel can trust every offset and joint it reads from it.
pub struct DeviceSkeleton {
    skeleton: Skeleton,
    table: Tensor,
}

impl DeviceSkeleton {
    pub fn skeleton(&self) -> &Skeleton {
        &self.skeleton
    }

    pub fn joints(&self) -> usize {
        self.skeleton.joints
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GcnParams {
    rows: u32,
    hidden: u32,
    joints: u32,
    samples: u32,
    mx_stride: u32,
    mc_stride: u32,
    has_ctx: u32,
    has_root: u32,
    mr_stride: u32,
    e_lo: u32,
    e_hi: u32,
    part: u32,
}

/// The context side of a CondGCN aggregation: per pose and keypoint, the context message (its
/// first `hidden` columns) and whether the keypoint is observed (1) or not (0).
pub struct GcnContext<'a> {
    /// [B, J, ≥ hidden]
    pub message: &'a Tensor,
    /// [B, J]
    pub observed: &'a Tensor,
}

/// The root node's message per pose, [B, ≥ hidden] (its first `hidden` columns), added to the
/// root's children.
pub struct GcnRoot<'a> {
    pub message: &'a Tensor,
}

/// Checks a CondGCN aggregation's shapes: node messages mx [B, S, J, ≥ 2H] (self loop in columns
/// 0..H, neighbour message in H..2H), context message [B, J, ≥ H] and mask [B, J]. Returns
/// (B, S, mx row stride, context row stride).
pub(crate) fn gcn_shapes(
    mx: &[usize],
    hidden: usize,
    joints: usize,
    context: Option<(&[usize], &[usize])>,
) -> Result<(usize, usize, usize, usize)> {
    const OP: &str = "gcn_aggregate";
    let (b, s, stride) = match *mx {
        [b, s, j, c] if j == joints && hidden > 0 && c >= 2 * hidden => (b, s, c),
        _ => return Err(Error::shape(OP, "node messages", mx, format!("[B, S, {joints}, >= {}]", 2 * hidden))),
    };
    let mut mc_stride = 0;
    if let Some((mc, obs)) = context {
        mc_stride = match *mc {
            [cb, j, c] if cb == b && j == joints && c >= hidden => c,
            _ => return Err(Error::shape(OP, "context messages", mc, format!("[{b}, {joints}, >= {hidden}]"))),
        };
        if obs != [b, joints] {
            return Err(Error::shape(OP, "observed", obs, format!("[{b}, {joints}]")));
        }
    }
    Ok((b, s, stride, mc_stride))
}

/// The node features' width F of [`gcn_aggregate_linear`]'s x [B, S, J, F ≤ 64].
pub(crate) fn gcn_linear_width(x: &[usize], joints: usize) -> Result<usize> {
    match *x {
        [_, _, j, f] if j == joints && (1..=64).contains(&f) => Ok(f),
        _ => Err(Error::shape("gcn_aggregate", "node features", x, format!("[B, S, {joints}, F <= 64]"))),
    }
}

/// The row stride of the root messages [B, ≥ hidden].
pub(crate) fn gcn_root_stride(mr: &[usize], b: usize, hidden: usize) -> Result<usize> {
    match *mr {
        [rb, c] if rb == b && c >= hidden => Ok(c),
        _ => Err(Error::shape("gcn_aggregate", "root messages", mr, format!("[{b}, >= {hidden}]"))),
    }
}

/// One CondGCN layer's sum aggregation (docs/ops.md, cGNF message passing) for nodes [B, S, J]: per node i,
/// h_i = mx_i[0..H] + Σ_{j ∈ neighbours(i)} mx_j[H..2H] + observed_i · mc_i[0..H], where mx holds
/// ReLU(W_x x + b_x) and ReLU(W_xx x + b_xx) side by side and mc = ReLU(W_cx c + b_cx) per pose
/// (broadcast over the S samples), plus, for the root's children, the root message (per pose).
/// Returns h [B, S, J, H].
pub fn gcn_aggregate(
    rec: &mut Recorder,
    mx: &Tensor,
    hidden: usize,
    skeleton: &DeviceSkeleton,
    context: Option<GcnContext>,
    root: Option<GcnRoot>,
) -> Result<Tensor> {
    mx.expect_f32("gcn_aggregate", "node messages")?;
    record_gcn(rec, mx, None, hidden, skeleton, context, root)
}

/// [`gcn_aggregate`] with the node messages computed in the kernel from the node features
/// x [B, S, J, F] and the stacked layer `packed` [2H, F + 1] (rows: W_x then W_xx, each row its F
/// weights then its bias): self loop ReLU(W_x x_i + b_x), neighbour message ReLU(W_xx x_j + b_xx).
/// For a small F (the first CondGCN layer's 3 coordinates) it saves the [.., 2H] message tensor.
#[allow(clippy::too_many_arguments)]
pub fn gcn_aggregate_linear(
    rec: &mut Recorder,
    x: &Tensor,
    packed: &Tensor,
    hidden: usize,
    skeleton: &DeviceSkeleton,
    context: Option<GcnContext>,
    root: Option<GcnRoot>,
) -> Result<Tensor> {
    const OP: &str = "gcn_aggregate";
    x.expect_f32(OP, "node features")?;
    let f = gcn_linear_width(x.shape(), skeleton.joints())?;
    super::expect_shape(OP, "packed layer", packed, &[2 * hidden, f + 1])?;
    record_gcn(rec, x, Some(packed), hidden, skeleton, context, root)
}

#[allow(clippy::too_many_arguments)]
fn record_gcn(
    rec: &mut Recorder,
    mx: &Tensor,
    packed: Option<&Tensor>,
    hidden: usize,
    skeleton: &DeviceSkeleton,
    context: Option<GcnContext>,
    root: Option<GcnRoot>,
) -> Result<Tensor> {
    const OP: &str = "gcn_aggregate";
    if let Some(c) = &context {
        c.message.expect_f32(OP, "context messages")?;
        c.observed.expect_f32(OP, "observed")?;
    }
    let (table, skeleton) = (&skeleton.table, &skeleton.skeleton);
    let j = skeleton.joints();
    // The direct form checks its input's shape as [B, S, J, F] against a message width of 2H.
    let sh = mx.shape();
    let as_messages = if packed.is_some() { vec![sh[0], sh[1], sh[2], 2 * hidden] } else { sh.to_vec() };
    let (b, s, mut mx_stride, mc_stride) =
        gcn_shapes(&as_messages, hidden, j, context.as_ref().map(|c| (c.message.shape(), c.observed.shape())))?;
    if packed.is_some() {
        mx_stride = sh[3];
    }
    let mut mr_stride = 0;
    if let Some(r) = &root {
        r.message.expect_f32(OP, "root messages")?;
        mr_stride = gcn_root_stride(r.message.shape(), b, hidden)?;
    }
    let rows = b * s * j;
    let ctx = rec.context();
    let p = GcnParams {
        rows: rows as u32,
        hidden: hidden as u32,
        joints: j as u32,
        samples: s as u32,
        mx_stride: mx_stride as u32,
        mc_stride: mc_stride as u32,
        has_ctx: context.is_some() as u32,
        has_root: root.is_some() as u32,
        mr_stride: mr_stride as u32,
        e_lo: 0,
        e_hi: u32::MAX,
        part: 3,
    };
    let bindings =
        [Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::Read, Access::Read];
    let kernel =
        ctx.kernel(&PipelineKey::new("graph", "gcn_aggregate", &bindings).flag(ov::DIRECT, packed.is_some()))?;
    let groups = super::elementwise_grid(ctx, rows * hidden, OP)?;
    let y = rec.alloc(OP, &[b, s, j, hidden], DType::F32)?;
    // Without a context the context bindings are bound to the node messages (never read).
    let (mc, obs) = match &context {
        Some(c) => (c.message, c.observed),
        None => (mx, mx),
    };
    let mr = root.as_ref().map_or(mx, |r| r.message);
    // One invocation runs the direct form's loop over the F features for its own message and for
    // each neighbour's, inside the loop over the neighbours: F + deg·(F + 1) iterations. Past the
    // loop budget the neighbour lists go in chunks across dispatches.
    let f = if packed.is_some() { mx_stride as u64 } else { 0 };
    let max_deg = (0..j).map(|v| skeleton.neighbours(v).len()).max().unwrap_or(0) as u64;
    let budget = rec.loop_budget();
    let per =
        if f + max_deg * (f + 1) <= budget { max_deg.max(1) } else { (budget.saturating_sub(f) / (f + 1)).max(1) };
    let mut parts: Vec<(usize, usize)> = crate::runtime::chunks(max_deg as usize, per as usize).collect();
    if parts.len() <= 1 {
        parts = vec![(0, u32::MAX as usize)];
    }
    let last = parts.len() - 1;
    for (k, &(lo, hi)) in parts.iter().enumerate() {
        let pk =
            GcnParams { e_lo: lo as u32, e_hi: hi as u32, part: (k == 0) as u32 | (((k == last) as u32) << 1), ..p };
        rec.dispatch(
            OP,
            kernel.clone(),
            bytemuck::bytes_of(&pk),
            &[Some(mx), Some(mc), Some(obs), Some(table), Some(&y), Some(mr), Some(packed.unwrap_or(mx))],
            groups,
        )?;
    }
    Ok(y)
}

/// Raw keypoints → model input: scaled per axis after subtracting the root keypoint (propose's
/// preprocessing: ×0.0139, root-centred, y flipped is `{ root: Some(0), scale: [0.0139, -0.0139] }`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeypointPrep {
    pub root: Option<usize>,
    pub scale: [f32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SageParams {
    batch: u32,
    joints: u32,
    feat: u32,
    prep: u32,
    root: i32,
    sx: f32,
    sy: f32,
    _p: u32,
    k_lo: u32,
    k_hi: u32,
    part: u32,
    _q: u32,
}

/// A DenseSAGE layer's input for x [B, J, F], the dense adjacency adj [J, J] and observed [B, J]
/// (0/1): with A = adj masked to the rows and columns of observed keypoints,
/// [A x / clamp(rowsum A, 1), x] → [B, J, 2F], so that one linear layer with [W_rel | W_root] and
/// the bias of W_rel completes PyG's DenseSAGEConv. With `prep`, x holds raw 2-D keypoints
/// (F = 2), preprocessed first; the second half of the output is then the preprocessed x.
/// Checks sage_aggregate's shapes and keypoint preparation: x [B, J, F] (F = 2 with `prep`),
/// adjacency [J, J], observed [B, J]. Returns (B, J, F). Shared by the op and its reference.
pub(crate) fn sage_shapes(
    x: &[usize],
    adj: &[usize],
    observed: &[usize],
    prep: Option<KeypointPrep>,
) -> Result<(usize, usize, usize)> {
    const OP: &str = "sage_aggregate";
    let (b, j, f) = match *x {
        [b, j, f] => (b, j, f),
        _ => return Err(Error::shape(OP, "input", x, "[B, J, F]")),
    };
    if adj != [j, j] {
        return Err(Error::shape(OP, "adjacency", adj, format!("{:?}", [j, j])));
    }
    if observed != [b, j] {
        return Err(Error::shape(OP, "observed", observed, format!("{:?}", [b, j])));
    }
    if let Some(p) = prep {
        if f != 2 {
            return Err(Error::shape(OP, "input", x, format!("[{b}, {j}, 2] (raw 2-D keypoints)")));
        }
        if let Some(r) = p.root {
            if r >= j {
                return Err(Error::param(OP, "root", format!("keypoint {r} is past the {j} keypoints")));
            }
        }
        for v in p.scale {
            super::finite(OP, "keypoint scale", v, false)?;
        }
    }
    Ok((b, j, f))
}

pub fn sage_aggregate(
    rec: &mut Recorder,
    x: &Tensor,
    adj: &Tensor,
    observed: &Tensor,
    prep: Option<KeypointPrep>,
) -> Result<Tensor> {
    const OP: &str = "sage_aggregate";
    x.expect_f32(OP, "input")?;
    adj.expect_f32(OP, "adjacency")?;
    observed.expect_f32(OP, "observed")?;
    let (b, j, f) = sage_shapes(x.shape(), adj.shape(), observed.shape(), prep)?;
    let root = prep.and_then(|p| p.root).map_or(-1, |r| r as i32);
    let scale = prep.map_or([1f32; 2], |p| p.scale);
    let ctx = rec.context();
    let params = SageParams {
        batch: b as u32,
        joints: j as u32,
        feat: f as u32,
        prep: prep.is_some() as u32,
        root,
        sx: scale[0],
        sy: scale[1],
        _p: 0,
        k_lo: 0,
        k_hi: j as u32,
        part: 3,
        _q: 0,
    };
    let groups = super::elementwise_grid(ctx, b * j * f, OP)?;
    let y = rec.alloc(OP, &[b, j, 2 * f], DType::F32)?;
    // One invocation loops over the J keypoints: past the loop budget, in chunks of keypoints
    // across dispatches, the running degree in a scratch buffer.
    let budget = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    if j <= budget {
        let bindings = [Access::Read, Access::Read, Access::Read, Access::ReadWrite];
        let kernel = ctx.kernel(&PipelineKey::new("graph", "sage_aggregate", &bindings))?;
        let t = [Some(x), Some(adj), Some(observed), Some(&y)];
        rec.dispatch(OP, kernel, bytemuck::bytes_of(&params), &t, groups)?;
        return Ok(y);
    }
    let deg = rec.alloc(OP, &[b, j, f], DType::F32)?;
    let bindings = [Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite];
    let kernel = ctx.kernel(&PipelineKey::new("graph", "sage_aggregate_part", &bindings))?;
    let parts: Vec<(usize, usize)> = crate::runtime::chunks(j, budget).collect();
    for (k, &(lo, hi)) in parts.iter().enumerate() {
        let pk = SageParams {
            k_lo: lo as u32,
            k_hi: hi as u32,
            part: (k == 0) as u32 | (((k == parts.len() - 1) as u32) << 1),
            ..params
        };
        let t = [Some(x), Some(adj), Some(observed), Some(&y), Some(&deg)];
        rec.dispatch(OP, kernel.clone(), bytemuck::bytes_of(&pk), &t, groups)?;
    }
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![
        super::params_layout!(
            "graph",
            "GcnParams",
            GcnParams,
            [rows, hidden, joints, samples, mx_stride, mc_stride, has_ctx, has_root, mr_stride, e_lo, e_hi, part]
        ),
        super::params_layout!(
            "graph",
            "SageParams",
            SageParams,
            [batch, joints, feat, prep, root, sx, sy, _p, k_lo, k_hi, part, _q]
        ),
    ]
}
