//! The Sensorium evaluation scores (shaders/scores.wgsl; docs/ops.md, Sensorium scores): per
//! neuron, over the trials of responses and predictions [T, M], the single-trial correlation and,
//! with the trials grouped by image ([`Repeats`]), the correlation of the repeat averages, FEV and
//! FEVE, as sensorium's `utility/scores.py` computes them with neuralpredictors'
//! `measures/np_functions.py` (`corr`, `fev`).
//!
//! The reductions run as Welford updates over segments of at most the loop budget's trials, then
//! Chan's pairwise merge of the segments' moments, level by level: any number of trials, accurate in
//! f32, one submit.

use std::collections::BTreeMap;

use super::{expect_shape, finite};
use crate::error::{Error, Result};
use crate::runtime::{chunks, Access, PipelineKey, Recorder};
use crate::shaders::overrides::scores as ov;
use crate::tensor::{DType, Tensor, MAX_ELEMENTS};

/// The op's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreParams {
    /// Added to each standard deviation of a correlation (neuralpredictors' `corr`: 1e-8).
    pub eps: f32,
}

impl Default for ScoreParams {
    fn default() -> Self {
        ScoreParams { eps: 1e-8 }
    }
}

impl ScoreParams {
    pub fn validate(&self) -> Result<()> {
        finite(OP, "eps", self.eps, false)?;
        if self.eps < 0.0 {
            return Err(Error::param(OP, "eps", format!("{} must be >= 0", self.eps)));
        }
        Ok(())
    }
}

const OP: &str = "scores";

/// The rows of the op's output [rows, M], in order: the single-trial correlation; with
/// [`Repeats`] also the correlation to the repeat average, FEV and FEVE.
pub const SCORE_ROWS: [&str; 4] = ["correlation", "repeat_correlation", "fev", "feve"];

/// The trials of a test set grouped by image id, as sensorium's `split_images` groups them: the
/// trials of equal id form one image, the images in increasing id order (`np.unique`), each
/// image's trials in their order. Every image needs at least 2 trials (FEVE's noise variance is
/// the variance across repeats with ddof 1; upstream gives NaN for every neuron otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repeats {
    trials: usize,
    ids: Vec<i64>,
    order: Vec<u32>,
    starts: Vec<usize>,
}

impl Repeats {
    /// Groups trial t by `ids[t]`. Refuses no ids, more than 2^31 of them, and an image with a
    /// single trial (`ids`, naming the id).
    pub fn from_ids(ids: &[i64]) -> Result<Repeats> {
        if ids.is_empty() {
            return Err(Error::param(OP, "ids", "is empty; one image id per trial expected"));
        }
        if ids.len() > MAX_ELEMENTS {
            return Err(Error::param(
                OP,
                "ids",
                format!("{} ids, past the {MAX_ELEMENTS} trials a tensor holds", ids.len()),
            ));
        }
        let mut groups: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (t, &id) in ids.iter().enumerate() {
            groups.entry(id).or_default().push(t as u32);
        }
        if let Some((id, ts)) = groups.iter().find(|(_, ts)| ts.len() < 2) {
            return Err(Error::param(
                OP,
                "ids",
                format!(
                    "image id {id} has a single trial (trial {}); FEVE's noise variance needs at least 2 repeats of every image",
                    ts[0]
                ),
            ));
        }
        let mut order = Vec::with_capacity(ids.len());
        let mut starts = vec![0];
        for ts in groups.values() {
            order.extend_from_slice(ts);
            starts.push(order.len());
        }
        Ok(Repeats { trials: ids.len(), ids: groups.into_keys().collect(), order, starts })
    }

    /// The number of trials (ids).
    pub fn trials(&self) -> usize {
        self.trials
    }

    /// The number of images (distinct ids).
    pub fn images(&self) -> usize {
        self.ids.len()
    }

    /// The distinct ids, increasing: image g's id is `ids()[g]`.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// The trials of image g, in their order.
    pub fn trials_of(&self, g: usize) -> &[u32] {
        &self.order[self.starts[g]..self.starts[g + 1]]
    }

    /// Refuses repeats that do not have one id per trial of `t` trials.
    pub(crate) fn check_trials(&self, t: usize) -> Result<()> {
        if self.trials != t {
            return Err(Error::shape(OP, "ids", &[self.trials], format!("[{t}] (one image id per trial)")));
        }
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ScParams {
    m: u32,
    rows: u32,
    blocks: u32,
    na: u32,
    nf: f32,
    gf: f32,
    eps: f32,
    _p: u32,
}

const BINDINGS: [Access; 5] = [Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite];

/// Components per row of partial moments (shaders/scores.wgsl).
const K: usize = 14;
/// Trials per segment and rows per merge, at most (and at most the loop budget).
const SEGMENT: usize = 256;
const FAN_IN: usize = 32;
/// Bit 31 of a segment's end: a piece of one image.
const PIECE: u32 = 1 << 31;

/// The scores of responses and predictions [T, M] (f32, T trials, M neurons), per neuron: output
/// [1, M] (the single-trial correlation) or, with `repeats` (one id per trial), [4, M]: the rows
/// of [`SCORE_ROWS`]. One submit's worth of dispatches; nothing is recorded if it refuses.
pub fn scores(
    rec: &mut Recorder,
    responses: &Tensor,
    predictions: &Tensor,
    repeats: Option<&Repeats>,
    p: &ScoreParams,
) -> Result<Tensor> {
    rec.atomic(|rec| scores_unit(rec, responses, predictions, repeats, p))
}

/// Checks the shapes (responses [T, M], predictions alike, one id per trial) and the
/// parameters; returns [T, M].
pub(crate) fn score_shapes(
    responses: &[usize],
    predictions: &[usize],
    repeats: Option<&Repeats>,
    p: &ScoreParams,
) -> Result<[usize; 2]> {
    let [t, m] = match *responses {
        [t, m] if t > 0 && m > 0 => [t, m],
        _ => return Err(Error::shape(OP, "responses", responses, "[trials, neurons], neither empty")),
    };
    if predictions != responses {
        return Err(Error::shape(OP, "predictions", predictions, format!("{responses:?} like responses")));
    }
    p.validate()?;
    if let Some(r) = repeats {
        r.check_trials(t)?;
    }
    Ok([t, m])
}

fn scores_unit(
    rec: &mut Recorder,
    responses: &Tensor,
    predictions: &Tensor,
    repeats: Option<&Repeats>,
    p: &ScoreParams,
) -> Result<Tensor> {
    responses.expect_f32(OP, "responses")?;
    expect_shape(OP, "predictions", predictions, responses.shape())?;
    let [t, m] = score_shapes(responses.shape(), predictions.shape(), repeats, p)?;
    let ctx = rec.context();
    let budget = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    let (seg, fan) = (SEGMENT.min(budget), FAN_IN.min(budget));
    let blocks = m.div_ceil(256);

    // Segments: runs of whole images (or chunks of all trials) first, then the pieces of images
    // of more than `seg` trials, each image's pieces consecutive.
    let mut table: Vec<u32> = Vec::new();
    let mut pieces: Vec<u32> = Vec::new();
    let mut split: Vec<(usize, usize)> = Vec::new();
    let mut order: Option<Vec<u32>> = None;
    match repeats {
        None => {
            for (lo, hi) in chunks(t, seg) {
                table.extend([lo as u32, hi as u32]);
            }
        }
        Some(r) => {
            let mut ord = Vec::with_capacity(t);
            let mut run: Option<(usize, usize)> = None;
            for g in 0..r.images() {
                let (s, e) = (r.starts[g], r.starts[g + 1]);
                let ts = r.trials_of(g);
                ord.extend(ts.iter().enumerate().map(|(i, &tr)| tr | if i + 1 == ts.len() { PIECE } else { 0 }));
                if e - s > seg {
                    // A run never spans a split image: its positions would not be contiguous.
                    if let Some((lo, hi)) = run.take() {
                        table.extend([lo as u32, hi as u32]);
                    }
                    let first = pieces.len() / 2;
                    for (lo, hi) in chunks(e - s, seg) {
                        pieces.extend([(s + lo) as u32, (s + hi) as u32 | PIECE]);
                    }
                    split.push((first, pieces.len() / 2));
                    continue;
                }
                run = match run {
                    Some((lo, _)) if e - lo <= seg => Some((lo, e)),
                    Some((lo, hi)) => {
                        table.extend([lo as u32, hi as u32]);
                        Some((s, e))
                    }
                    None => Some((s, e)),
                };
            }
            if let Some((lo, hi)) = run {
                table.extend([lo as u32, hi as u32]);
            }
            order = Some(ord);
        }
    }
    let whole = table.len() / 2;
    for r in &mut split {
        *r = (r.0 + whole, r.1 + whole);
    }
    table.extend(&pieces);
    let rows = table.len() / 2;
    let groups = repeats.is_some();

    let seg_table = Tensor::from_f32(ctx, bytemuck::cast_slice(&table), &[table.len()])?;
    let order = order.map(|o| Tensor::from_f32(ctx, bytemuck::cast_slice(&o), &[o.len()])).transpose()?;
    let partial = rec.alloc(OP, &[rows, K, m], DType::F32)?;
    let pk = ScParams { m: m as u32, rows: rows as u32, blocks: blocks as u32, eps: p.eps, ..Default::default() };
    let grid = ctx.grid_1d((rows as u64) * blocks as u64, OP)?;
    let kernel = ctx.kernel(&PipelineKey::new("scores", "scores_segments", &BINDINGS).flag(ov::GROUPS, groups))?;
    rec.dispatch(
        "scores/segments",
        kernel,
        bytemuck::bytes_of(&pk),
        &[Some(responses), Some(predictions), order.as_ref(), Some(&seg_table), Some(&partial)],
        grid,
    )?;

    // The pieces of each large image merged and closed into one image row each; then every row
    // (the whole runs' and the closed images') merged into one.
    let closed =
        if split.is_empty() { None } else { Some(merge_levels(rec, (&partial, None, rows), split, true, fan, pk)?) };
    let n_closed = closed.as_ref().map_or(0, |c| c.shape()[0]);
    let last = merge_levels(rec, (&partial, closed.as_ref(), whole), vec![(0, whole + n_closed)], false, fan, pk)?;

    let out_rows = if groups { 4 } else { 1 };
    let y = rec.alloc(OP, &[out_rows, m], DType::F32)?;
    let images = repeats.map_or(0, |r| r.images());
    let pf = ScParams { rows: 1, nf: t as f32, gf: images as f32, ..pk };
    let fin = ctx.kernel(&PipelineKey::new("scores", "scores_finish", &BINDINGS).flag(ov::GROUPS, groups))?;
    rec.dispatch(
        "scores/finish",
        fin,
        bytemuck::bytes_of(&pf),
        &[Some(&last), None, None, None, Some(&y)],
        super::elementwise_grid(ctx, m, OP)?,
    )?;
    Ok(y)
}

/// Merges each range of rows (indices below `na` into `a`, the others into `b`) into one row,
/// in levels of at most `fan` rows per merge; `close` makes the last level close each range into
/// one image. Returns [ranges, K, M].
fn merge_levels(
    rec: &mut Recorder,
    input: (&Tensor, Option<&Tensor>, usize),
    mut ranges: Vec<(usize, usize)>,
    close: bool,
    fan: usize,
    pk: ScParams,
) -> Result<Tensor> {
    let ctx = rec.context();
    let m = pk.m as usize;
    let (mut a, mut b, mut na) = (input.0.clone(), input.1.cloned(), input.2);
    loop {
        let final_level = ranges.iter().all(|&(lo, hi)| hi - lo <= fan);
        let mut table: Vec<u32> = Vec::new();
        let mut next = Vec::with_capacity(ranges.len());
        for &(lo, hi) in &ranges {
            let first = table.len() / 2;
            for (l, h) in chunks(hi - lo, fan) {
                table.extend([(lo + l) as u32, (lo + h) as u32]);
            }
            next.push((first, table.len() / 2));
        }
        let rows = table.len() / 2;
        let t = Tensor::from_f32(ctx, bytemuck::cast_slice(&table), &[table.len()])?;
        let out = rec.alloc(OP, &[rows, K, m], DType::F32)?;
        let p = ScParams { rows: rows as u32, na: na as u32, ..pk };
        let key = PipelineKey::new("scores", "scores_merge", &BINDINGS).flag(ov::CLOSE, close && final_level);
        rec.dispatch(
            "scores/merge",
            ctx.kernel(&key)?,
            bytemuck::bytes_of(&p),
            &[Some(&a), b.as_ref(), None, Some(&t), Some(&out)],
            ctx.grid_1d((rows as u64) * pk.blocks as u64, OP)?,
        )?;
        if final_level {
            return Ok(out);
        }
        (a, b, na, ranges) = (out, None, rows, next);
    }
}

/// The means over neurons that sensorium reports, from the op's output [rows, M] (row-major).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreSummary {
    pub neurons: usize,
    /// Mean single-trial correlation, a NaN correlation counted as 0 (`get_correlations`).
    pub correlation: f64,
    /// Neurons whose single-trial correlation is NaN (counted as 0 above).
    pub correlation_nan: usize,
    /// Mean correlation to the repeat average (`get_signal_correlations`: a NaN stays).
    pub repeat_correlation: Option<f64>,
    /// Mean FEVE over the neurons with FEV >= the threshold (`get_fev`; NaN when none is).
    pub feve: Option<f64>,
    /// The neurons that count in `feve`.
    pub feve_neurons: usize,
    pub fev_threshold: f64,
}

impl ScoreSummary {
    /// Summarizes `values` ([1, M] or [4, M], as [`scores`] returns); `fev_threshold` as
    /// sensorium's `get_fev` (0.15 there).
    pub fn new(values: &[f32], m: usize, fev_threshold: f64) -> Result<ScoreSummary> {
        let rows = values.len().checked_div(m).unwrap_or(0);
        if m == 0 || !(rows == 1 || rows == 4) || values.len() != rows * m {
            return Err(Error::shape(OP, "scores", &[values.len()], format!("[1 or 4, {m}]")));
        }
        let row = |r: usize| &values[r * m..(r + 1) * m];
        let mean = |v: &mut dyn Iterator<Item = f64>| {
            let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
            s / n as f64
        };
        let corr = row(0);
        let correlation_nan = corr.iter().filter(|v| v.is_nan()).count();
        let correlation = mean(&mut corr.iter().map(|&v| if v.is_nan() { 0.0 } else { v as f64 }));
        let (mut repeat_correlation, mut feve, mut feve_neurons) = (None, None, 0);
        if rows == 4 {
            repeat_correlation = Some(mean(&mut row(1).iter().map(|&v| v as f64)));
            let kept: Vec<f64> =
                row(2).iter().zip(row(3)).filter(|(&f, _)| f as f64 >= fev_threshold).map(|(_, &e)| e as f64).collect();
            feve_neurons = kept.len();
            feve = Some(mean(&mut kept.into_iter()));
        }
        Ok(ScoreSummary {
            neurons: m,
            correlation,
            correlation_nan,
            repeat_correlation,
            feve,
            feve_neurons,
            fev_threshold,
        })
    }
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!("scores", "ScParams", ScParams, [m, rows, blocks, na, nf, gf, eps, _p])]
}
