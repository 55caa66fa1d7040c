//! The models of the CLI as Python classes: each loads from a weights file or a dict of arrays and
//! a config file or JSON text, keeps the context it was uploaded to, and runs one submit per call
//! (per batch, for the twins' predict).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use vcortex::io::HostTensor;
use vcortex::models::cgnf::{CgnfConfig, Condition};
use vcortex::models::flow::FlowConfig;
use vcortex::models::latent::{Latent, LatentConfig, LatentMode, LatentOutput, LatentStream};
use vcortex::models::platypose::{observations_from, Platypose, PlatyposeConfig, SamplerNoise};
use vcortex::models::video::{Video, VideoConfig, VideoStream};
use vcortex::models::{Cgnf, Cotrain, CotrainConfig, Flow, Sensorium, SensoriumConfig};
use vcortex::{Context, Error, Recorder, Result, Tensor};

use crate::{array, array_dict, compute, guarded, host_dict, slice, PyContext};

/// Weights as given: a safetensors path, or tensors in memory (a state dict).
enum Weights {
    Path(PathBuf),
    Dict(BTreeMap<String, HostTensor>),
}

impl Weights {
    fn extract(w: &Bound<'_, PyAny>) -> PyResult<Weights> {
        if let Ok(s) = w.downcast::<PyString>() {
            return Ok(Weights::Path(PathBuf::from(s.extract::<String>()?)));
        }
        if w.downcast::<PyDict>().is_ok() {
            return Ok(Weights::Dict(host_dict(w, "weights")?));
        }
        Err(PyTypeError::new_err("weights: expected a path or a dict of arrays"))
    }

    /// The tensors, and the file they came from.
    fn tensors(self) -> Result<(BTreeMap<String, HostTensor>, Option<PathBuf>)> {
        match self {
            Weights::Path(p) => Ok((vcortex::io::read_weights(&p)?.tensors, Some(p))),
            Weights::Dict(d) => Ok((d, None)),
        }
    }
}

/// A config as given: the JSON text of a file (`is_path`) or the text itself, with its `"kind"`
/// removed after checking it is one of `kinds`. Returns the JSON and the file.
fn config_json(config: &str, is_path: bool, kinds: &[&str], model: &str) -> Result<(String, Option<PathBuf>)> {
    let (text, path) = if is_path {
        let p = PathBuf::from(config);
        let t = std::fs::read_to_string(&p)
            .map_err(|e| Error::File { path: p.display().to_string(), reason: format!("cannot read: {e}") })?;
        (t, Some(p))
    } else {
        (config.to_string(), None)
    };
    let in_file = |reason: String| match &path {
        Some(p) => Error::File { path: p.display().to_string(), reason },
        None => Error::Config(reason),
    };
    let mut v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| in_file(format!("{model} config: not JSON: {e}")))?;
    if let Some(k) = v.as_object_mut().and_then(|m| m.remove("kind")) {
        if !k.as_str().is_some_and(|k| kinds.contains(&k)) {
            return Err(in_file(format!(
                "config \"kind\" is {k}; vcortex.{model} takes \"{}\"",
                kinds.join("\" or \"")
            )));
        }
    }
    Ok((v.to_string(), path))
}

/// A config parse error as an error of the config file, where there is one.
fn in_config(e: Error, config: Option<&Path>) -> Error {
    match config {
        Some(p) => Error::File { path: p.display().to_string(), reason: e.to_string() },
        None => e,
    }
}

/// A loader error as an error of the weights file (and the config file), where the weights came
/// from a file; the engine's own error where they came from a dict.
fn in_files(e: Error, weights: Option<&Path>, config: Option<&Path>) -> Error {
    match weights {
        None => e,
        Some(w) => e.in_files(w, config.unwrap_or(Path::new("config (a dict)"))),
    }
}

type Arr<'py> = Option<PyReadonlyArrayDyn<'py, f32>>;

/// An optional array's data and shape.
fn opt<'a>(a: &'a Arr<'_>, what: &str) -> PyResult<Option<(&'a [f32], Vec<usize>)>> {
    a.as_ref().map(|a| Ok((slice(a, what)?, a.shape().to_vec()))).transpose()
}

fn up(ctx: &Context, t: Option<(&[f32], Vec<usize>)>) -> Result<Option<Tensor>> {
    t.map(|(d, s)| Tensor::from_f32(ctx, d, &s)).transpose()
}

/// Submits `rec` and reads the named tensors back.
fn read(mut rec: Recorder, outs: &[(&str, &Tensor)]) -> Result<Vec<(String, HostTensor)>> {
    let hs: Vec<_> = outs.iter().map(|(_, t)| rec.read_back(t)).collect();
    let done = rec.submit()?;
    Ok(outs
        .iter()
        .zip(hs)
        .map(|((n, t), h)| (n.to_string(), HostTensor::new(t.shape().to_vec(), done.f32(h))))
        .collect())
}

/// The two twins behind one predict loop.
enum Twin<'a> {
    Sensorium(&'a Sensorium),
    Cotrain(&'a Cotrain),
}

type Host<'a> = Option<(&'a [f32], Vec<usize>)>;

/// Responses [N, neurons] per data key (the one asked for, or every key), `batch` images per
/// submit: the loop of `vcortex predict`.
fn predict_all(
    ctx: &Context,
    m: Twin,
    x: &[f32],
    shape: &[usize],
    eye: Host,
    behavior: Host,
    key: Option<String>,
    batch: usize,
) -> Result<Vec<(String, HostTensor)>> {
    const OP: &str = "predict";
    if batch == 0 {
        return Err(Error::param(OP, "batch", "must be >= 1"));
    }
    if shape.len() != 4 || shape[0] == 0 {
        return Err(Error::shape(OP, "images", shape, "[N, C, H, W] with N >= 1"));
    }
    let n = shape[0];
    let per: usize = shape[1..].iter().product();
    if let Some((_, s)) = &eye {
        if s[..] != [n, 2] {
            return Err(Error::shape(OP, "pupil_center", s, format!("[{n}, 2]")));
        }
    }
    if let Some((_, s)) = &behavior {
        if s.len() != 2 || s[0] != n {
            return Err(Error::shape(OP, "behavior", s, format!("[{n}, B]")));
        }
    }
    let keys: Vec<String> = match (key, &m) {
        (Some(k), _) => vec![k],
        (None, Twin::Sensorium(s)) => s.data_keys().iter().map(|k| k.to_string()).collect(),
        (None, Twin::Cotrain(c)) => c.data_keys().iter().map(|k| k.to_string()).collect(),
    };
    let mut outputs = Vec::new();
    for key in keys {
        let (shifter, modulator) = match &m {
            Twin::Sensorium(s) => (s.has_shifter(&key), s.has_modulator(&key)),
            Twin::Cotrain(_) => (false, false),
        };
        if shifter && eye.is_none() {
            return Err(Error::param(
                OP,
                "pupil_center",
                format!("data key {key:?} has a shifter: pass pupil_center [N, 2]"),
            ));
        }
        if modulator && behavior.is_none() {
            return Err(Error::param(
                OP,
                "behavior",
                format!("data key {key:?} has a modulator: pass behavior [N, B]"),
            ));
        }
        let mut responses = Vec::new();
        let mut neurons = 0;
        for start in (0..n).step_by(batch) {
            let b = batch.min(n - start);
            let mut bshape = shape.to_vec();
            bshape[0] = b;
            let xs = &x[start * per..(start + b) * per];
            let e = eye.as_ref().filter(|_| shifter).map(|(d, _)| &d[start * 2..(start + b) * 2]);
            let bh = behavior.as_ref().filter(|_| modulator).map(|(d, s)| &d[start * s[1]..(start + b) * s[1]]);
            let y = match &m {
                Twin::Sensorium(s) => s.predict_full(ctx, xs, &bshape, e, bh, &key)?,
                Twin::Cotrain(c) => c.predict(ctx, xs, &bshape, &key)?,
            };
            neurons = y.len() / b;
            if responses.is_empty() {
                responses.reserve_exact(n * neurons);
            }
            responses.extend(y);
        }
        outputs.push((key, HostTensor::new(vec![n, neurons], responses)));
    }
    Ok(outputs)
}

/// A model the package loads from a state dict and a config: its config type and kind.
trait Loadable: Sized + Send {
    type Config;
    /// The config's `"kind"` and the class name, for the errors.
    const KIND: &'static str;
    const NAME: &'static str;
    fn parse(json: &str) -> Result<Self::Config>;
    fn build(config: Self::Config, sd: BTreeMap<String, HostTensor>) -> Result<Self>;
    fn upload_to(&mut self, ctx: &Context) -> Result<()>;
}

macro_rules! loadable {
    ($($model:ty, $config:ty, $kind:literal, $name:literal;)*) => {$(
        impl Loadable for $model {
            type Config = $config;
            const KIND: &'static str = $kind;
            const NAME: &'static str = $name;
            fn parse(json: &str) -> Result<$config> {
                <$config>::from_json(json)
            }
            fn build(config: $config, sd: BTreeMap<String, HostTensor>) -> Result<Self> {
                <$model>::from_state_dict(config, sd)
            }
            fn upload_to(&mut self, ctx: &Context) -> Result<()> {
                self.upload(ctx)
            }
        }
    )*};
}

loadable! {
    Sensorium, SensoriumConfig, "sensorium", "Sensorium";
    Video, VideoConfig, "video", "Video";
    Latent, LatentConfig, "latent", "Latent";
    Cotrain, CotrainConfig, "cotrain", "Cotrain";
    Flow, FlowConfig, "flow", "Flow";
    Cgnf, CgnfConfig, "cgnf", "Cgnf";
}

/// Loads a model from `weights` (a path or a dict of arrays) and `config` (JSON text, or a path
/// with `is_path`), with the GIL released; errors name the files.
fn load_model<M: Loadable>(
    py: Python<'_>,
    ctx: &PyContext,
    weights: &Bound<'_, PyAny>,
    config: &str,
    is_path: bool,
) -> PyResult<M> {
    let w = guarded(|| Weights::extract(weights))?;
    let c = ctx.ctx.clone();
    compute(py, || {
        let (json, cp) = config_json(config, is_path, &[M::KIND], M::NAME)?;
        let cfg = M::parse(&json).map_err(|e| in_config(e, cp.as_deref()))?;
        let (sd, wp) = w.tensors()?;
        let mut m = M::build(cfg, sd).map_err(|e| in_files(e, wp.as_deref(), cp.as_deref()))?;
        m.upload_to(&c)?;
        Ok(m)
    })
}

/// The models that tests and examples build on random weights (`_random`).
trait RandomModel: Loadable {
    fn random_of(config: Self::Config, seed: u64) -> Result<Self>;
}

impl RandomModel for Video {
    fn random_of(config: VideoConfig, seed: u64) -> Result<Self> {
        Video::random(config, seed)
    }
}

impl RandomModel for Latent {
    fn random_of(config: LatentConfig, seed: u64) -> Result<Self> {
        Latent::random(config, seed)
    }
}

/// A model of `config` (JSON text) with random weights of `seed`, uploaded, the GIL released.
fn random_model<M: RandomModel>(py: Python<'_>, ctx: &PyContext, config: &str, seed: u64) -> PyResult<M> {
    let c = ctx.ctx.clone();
    compute(py, || {
        let (json, _) = config_json(config, false, &[M::KIND], M::NAME)?;
        let mut m = M::random_of(M::parse(&json)?, seed)?;
        m.upload_to(&c)?;
        Ok(m)
    })
}

/// A Sensorium-style model (`vcortex.Sensorium`).
#[pyclass(name = "Sensorium", module = "vcortex._vcortex", frozen)]
pub struct PySensorium {
    model: Sensorium,
    ctx: Arc<Context>,
}

#[pymethods]
impl PySensorium {
    #[staticmethod]
    fn load(
        py: Python<'_>,
        ctx: &PyContext,
        weights: &Bound<'_, PyAny>,
        config: &str,
        is_path: bool,
    ) -> PyResult<Self> {
        let model = load_model::<Sensorium>(py, ctx, weights, config, is_path)?;
        Ok(PySensorium { model, ctx: ctx.ctx.clone() })
    }

    /// The model of the `sensorium_latency_*` bench cases (random weights, seed 11; 8000 neurons
    /// under the data key "bench"), for python/bench.py.
    #[staticmethod]
    fn _bench_model(py: Python<'_>, ctx: &PyContext) -> PyResult<Self> {
        let c = ctx.ctx.clone();
        let model = compute(py, || {
            let mut m = Sensorium::random(Sensorium::baseline_config(8000), 11)?;
            m.upload(&c)?;
            Ok(m)
        })?;
        Ok(PySensorium { model, ctx: ctx.ctx.clone() })
    }

    /// Times `Sensorium::predict_full` on `images` for data key `key` inside this process, with
    /// the GIL released and no Python between runs: the seconds of each of `reps` calls. The
    /// same call `predict` makes, minus the binding, for python/bench.py.
    fn _time_native(
        &self,
        py: Python<'_>,
        images: PyReadonlyArrayDyn<'_, f32>,
        key: String,
        reps: usize,
    ) -> PyResult<Vec<f64>> {
        guarded(|| {
            let shape = images.shape().to_vec();
            let x = slice(&images, "images")?;
            compute(py, || {
                (0..reps)
                    .map(|_| {
                        let t0 = std::time::Instant::now();
                        self.model.predict_full(&self.ctx, x, &shape, None, None, &key)?;
                        Ok(t0.elapsed().as_secs_f64())
                    })
                    .collect()
            })
        })
    }

    fn data_keys(&self) -> Vec<String> {
        self.model.data_keys().iter().map(|k| k.to_string()).collect()
    }

    fn has_shifter(&self, key: &str) -> bool {
        self.model.has_shifter(key)
    }

    fn has_modulator(&self, key: &str) -> bool {
        self.model.has_modulator(key)
    }

    #[pyo3(signature = (images, data_key = None, pupil_center = None, behavior = None, batch = 128))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, f32>,
        data_key: Option<String>,
        pupil_center: Arr<'py>,
        behavior: Arr<'py>,
        batch: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let shape = images.shape().to_vec();
            let x = slice(&images, "images")?;
            let (e, b) = (opt(&pupil_center, "pupil_center")?, opt(&behavior, "behavior")?);
            let outs =
                compute(py, || predict_all(&self.ctx, Twin::Sensorium(&self.model), x, &shape, e, b, data_key, batch))?;
            array_dict(py, outs)
        })
    }
}

/// The Sensorium 2023 video twin (`vcortex.Video`).
#[pyclass(name = "Video", module = "vcortex._vcortex", frozen)]
pub struct PyVideo {
    model: Arc<Video>,
    ctx: Arc<Context>,
}

#[pymethods]
impl PyVideo {
    #[staticmethod]
    fn load(
        py: Python<'_>,
        ctx: &PyContext,
        weights: &Bound<'_, PyAny>,
        config: &str,
        is_path: bool,
    ) -> PyResult<Self> {
        let model = load_model::<Video>(py, ctx, weights, config, is_path)?;
        Ok(PyVideo { model: Arc::new(model), ctx: ctx.ctx.clone() })
    }

    /// A model of `config` (JSON text) with random weights of `seed` (tests and examples).
    #[staticmethod]
    fn _random(py: Python<'_>, ctx: &PyContext, config: &str, seed: u64) -> PyResult<Self> {
        let model = random_model::<Video>(py, ctx, config, seed)?;
        Ok(PyVideo { model: Arc::new(model), ctx: ctx.ctx.clone() })
    }

    fn data_keys(&self) -> Vec<String> {
        self.model.data_keys().iter().map(|k| k.to_string()).collect()
    }

    fn input_channels(&self) -> usize {
        self.model.config.core.input_channels()
    }

    /// A stream into the readout of `data_key` for `batch` videos of height × width frames.
    fn stream(
        &self,
        py: Python<'_>,
        data_key: String,
        batch: usize,
        height: usize,
        width: usize,
    ) -> PyResult<PyVideoStream> {
        let stream = compute(py, || self.model.stream_shared(&data_key, batch, height, width))?;
        let shifter = self.model.has_shifter(&data_key);
        Ok(PyVideoStream { stream: Mutex::new(stream), ctx: self.ctx.clone(), key: data_key, shifter })
    }

    #[pyo3(signature = (video, data_key = None, pupil_center = None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        video: PyReadonlyArrayDyn<'py, f32>,
        data_key: Option<String>,
        pupil_center: Arr<'py>,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let shape = video.shape().to_vec();
            let x = slice(&video, "video")?;
            let p = opt(&pupil_center, "pupil_center")?;
            let keys: Vec<String> = match data_key {
                Some(k) => vec![k],
                None => self.data_keys(),
            };
            let outs = compute(py, || {
                keys.iter()
                    .map(|k| {
                        let pc = p.as_ref().filter(|_| self.model.has_shifter(k)).map(|(d, _)| *d);
                        let (y, s) = self.model.predict(&self.ctx, x, &shape, pc, k)?;
                        Ok((k.clone(), HostTensor::new(s, y)))
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            array_dict(py, outs)
        })
    }
}

/// The latent video model (`vcortex.Latent`).
#[pyclass(name = "Latent", module = "vcortex._vcortex", frozen)]
pub struct PyLatent {
    model: Arc<Latent>,
    ctx: Arc<Context>,
}

#[pymethods]
impl PyLatent {
    #[staticmethod]
    fn load(
        py: Python<'_>,
        ctx: &PyContext,
        weights: &Bound<'_, PyAny>,
        config: &str,
        is_path: bool,
    ) -> PyResult<Self> {
        let model = load_model::<Latent>(py, ctx, weights, config, is_path)?;
        Ok(PyLatent { model: Arc::new(model), ctx: ctx.ctx.clone() })
    }

    /// A model of `config` (JSON text) with random weights of `seed` (tests and examples).
    #[staticmethod]
    fn _random(py: Python<'_>, ctx: &PyContext, config: &str, seed: u64) -> PyResult<Self> {
        let model = random_model::<Latent>(py, ctx, config, seed)?;
        Ok(PyLatent { model: Arc::new(model), ctx: ctx.ctx.clone() })
    }

    fn data_key(&self) -> String {
        self.model.config.readout.data_key.clone()
    }

    /// A stream of `batch` videos of height × width frames, conditioned on responses or drawing
    /// from the prior (defaults: the config's `samples` and `seed`).
    #[pyo3(signature = (batch, height, width, conditioned = false, samples = None, seed = None))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        py: Python<'_>,
        batch: usize,
        height: usize,
        width: usize,
        conditioned: bool,
        samples: Option<usize>,
        seed: Option<u64>,
    ) -> PyResult<PyLatentStream> {
        let mode = if conditioned { LatentMode::Conditioned } else { LatentMode::Prior };
        let cfg = &self.model.config;
        let (s, seed) = (samples.unwrap_or(cfg.samples), seed.unwrap_or(cfg.seed));
        let stream = compute(py, || self.model.stream_shared(batch, height, width, mode, s, seed))?;
        Ok(PyLatentStream { stream: Mutex::new(stream), ctx: self.ctx.clone(), neurons: cfg.readout.neurons })
    }

    #[pyo3(signature = (video, responses = None, samples = None, seed = None, conditioned = None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        video: PyReadonlyArrayDyn<'py, f32>,
        responses: Arr<'py>,
        samples: Option<usize>,
        seed: Option<u64>,
        conditioned: Option<bool>,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let shape = video.shape().to_vec();
            let x = slice(&video, "video")?;
            let r = opt(&responses, "responses")?;
            // Conditioned on the responses when they are given, unless asked not to (then they are
            // the targets of the prior samples' log-likelihood).
            let mode = if conditioned.unwrap_or(r.is_some()) { LatentMode::Conditioned } else { LatentMode::Prior };
            let cfg = &self.model.config;
            let (s, seed) = (samples.unwrap_or(cfg.samples), seed.unwrap_or(cfg.seed));
            let out = compute(py, || self.model.predict(&self.ctx, x, &shape, r.map(|(d, _)| d), mode, s, seed))?;
            array_dict(py, frames_last(out))
        })
    }
}

/// A latent output [B, K, N] as `{"mean", "loglik_bits"}` of [B, N, K], frames last as the CLI
/// writes them.
fn frames_last(out: LatentOutput) -> Vec<(String, HostTensor)> {
    let [b, t, n] = out.shape;
    let last = |v: &[f32]| {
        let mut y = vec![0f32; v.len()];
        for bi in 0..b {
            for ti in 0..t {
                for ni in 0..n {
                    y[(bi * n + ni) * t + ti] = v[(bi * t + ti) * n + ni];
                }
            }
        }
        HostTensor::new(vec![b, n, t], y)
    };
    let mut outs = vec![("mean".to_string(), last(&out.mean))];
    if let Some(l) = &out.loglik {
        outs.push(("loglik_bits".to_string(), last(l)));
    }
    outs
}

/// A stream's lock; a stream left poisoned by a caught panic raises `InternalError` (the panic
/// is caught by `compute`).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|_| panic!("the stream was left inconsistent by an earlier internal error"))
}

/// A stream of frames into one readout of a video model (`vcortex.VideoStream`). It holds a
/// share of the model; its calls lock it, so that threads may share it.
#[pyclass(name = "VideoStream", module = "vcortex._vcortex", frozen)]
pub struct PyVideoStream {
    stream: Mutex<VideoStream<'static>>,
    ctx: Arc<Context>,
    key: String,
    shifter: bool,
}

#[pymethods]
impl PyVideoStream {
    fn data_key(&self) -> String {
        self.key.clone()
    }

    /// Frames [B, C, k, H, W] (and pupil_center [B, 2, k], ignored by a readout without a
    /// shifter as in `predict`) → rates [B, N, k'] of the new frames past the receptive field.
    #[pyo3(signature = (frames, pupil_center = None))]
    fn push<'py>(
        &self,
        py: Python<'py>,
        frames: PyReadonlyArrayDyn<'py, f32>,
        pupil_center: Arr<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let shape = frames.shape().to_vec();
            let x = slice(&frames, "frames")?;
            let p = opt(&pupil_center, "pupil_center")?.filter(|_| self.shifter);
            let (y, s) = compute(py, || {
                // The engine checks the length; the shape is checked here.
                if let (Some((_, ps)), &[b, _, k, _, _]) = (&p, &shape[..]) {
                    if ps[..] != [b, 2, k] {
                        return Err(Error::shape(
                            "video",
                            "pupil_center",
                            ps,
                            format!("[{b}, 2, {k}] (B, 2, the frames' k)"),
                        ));
                    }
                }
                locked(&self.stream).push(&self.ctx, x, &shape, p.map(|(d, _)| d))
            })?;
            array(py, y, &s)
        })
    }

    fn frames_seen(&self, py: Python<'_>) -> PyResult<usize> {
        compute(py, || Ok(locked(&self.stream).frames_seen()))
    }

    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        compute(py, || {
            locked(&self.stream).reset();
            Ok(())
        })
    }
}

/// A stream of frames (and responses) into a latent model (`vcortex.LatentStream`).
#[pyclass(name = "LatentStream", module = "vcortex._vcortex", frozen)]
pub struct PyLatentStream {
    stream: Mutex<LatentStream<'static>>,
    ctx: Arc<Context>,
    neurons: usize,
}

#[pymethods]
impl PyLatentStream {
    /// Frames [B, 1, k, H, W] (and responses [B, N, k]) → `{"mean", "loglik_bits"}` [B, N, K] of
    /// the K output frames that became final.
    #[pyo3(signature = (frames, responses = None))]
    fn push<'py>(
        &self,
        py: Python<'py>,
        frames: PyReadonlyArrayDyn<'py, f32>,
        responses: Arr<'py>,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let shape = frames.shape().to_vec();
            let x = slice(&frames, "frames")?;
            let r = opt(&responses, "responses")?;
            let n = self.neurons;
            let out = compute(py, || {
                // The engine checks the length; the shape is checked here.
                if let (Some((_, rs)), &[b, _, k, _, _]) = (&r, &shape[..]) {
                    if rs[..] != [b, n, k] {
                        return Err(Error::shape(
                            "latent",
                            "responses",
                            rs,
                            format!("[{b}, {n}, {k}] (B, neurons, the frames' k)"),
                        ));
                    }
                }
                locked(&self.stream).push(&self.ctx, x, &shape, r.map(|(d, _)| d))
            })?;
            array_dict(py, frames_last(out))
        })
    }

    /// The output frames held back, with the clip forward's padding at the end; starts over.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let out = compute(py, || locked(&self.stream).finish(&self.ctx))?;
            array_dict(py, frames_last(out))
        })
    }

    fn frames_seen(&self, py: Python<'_>) -> PyResult<usize> {
        compute(py, || Ok(locked(&self.stream).frames_seen()))
    }

    fn frames_emitted(&self, py: Python<'_>) -> PyResult<usize> {
        compute(py, || Ok(locked(&self.stream).frames_emitted()))
    }

    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        compute(py, || {
            locked(&self.stream).reset();
            Ok(())
        })
    }
}

/// The co-training twin (`vcortex.Cotrain`).
#[pyclass(name = "Cotrain", module = "vcortex._vcortex", frozen)]
pub struct PyCotrain {
    model: Cotrain,
    ctx: Arc<Context>,
}

#[pymethods]
impl PyCotrain {
    #[staticmethod]
    fn load(
        py: Python<'_>,
        ctx: &PyContext,
        weights: &Bound<'_, PyAny>,
        config: &str,
        is_path: bool,
    ) -> PyResult<Self> {
        let model = load_model::<Cotrain>(py, ctx, weights, config, is_path)?;
        Ok(PyCotrain { model, ctx: ctx.ctx.clone() })
    }

    fn data_keys(&self) -> Vec<String> {
        self.model.data_keys().iter().map(|k| k.to_string()).collect()
    }

    #[pyo3(signature = (images, data_key = None, batch = 128))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, f32>,
        data_key: Option<String>,
        batch: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let shape = images.shape().to_vec();
            let x = slice(&images, "images")?;
            let outs = compute(py, || {
                predict_all(&self.ctx, Twin::Cotrain(&self.model), x, &shape, None, None, data_key, batch)
            })?;
            array_dict(py, outs)
        })
    }
}

/// A composite normalizing flow (`vcortex.Flow`).
#[pyclass(name = "Flow", module = "vcortex._vcortex", frozen)]
pub struct PyFlow {
    model: Flow,
    ctx: Arc<Context>,
}

#[pymethods]
impl PyFlow {
    #[staticmethod]
    fn load(
        py: Python<'_>,
        ctx: &PyContext,
        weights: &Bound<'_, PyAny>,
        config: &str,
        is_path: bool,
    ) -> PyResult<Self> {
        let model = load_model::<Flow>(py, ctx, weights, config, is_path)?;
        Ok(PyFlow { model, ctx: ctx.ctx.clone() })
    }

    /// (log p(x) [N], z [N, D]) as a dict.
    fn log_prob<'py>(&self, py: Python<'py>, x: PyReadonlyArrayDyn<'py, f32>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let shape = x.shape().to_vec();
            let xs = slice(&x, "x")?;
            let outs = compute(py, || {
                let xt = Tensor::from_f32(&self.ctx, xs, &shape)?;
                let mut rec = self.ctx.recorder();
                let (z, lp) = self.model.record_log_prob(&mut rec, &xt)?;
                read(rec, &[("log_prob", &lp), ("z", &z)])
            })?;
            array_dict(py, outs)
        })
    }

    #[pyo3(signature = (n, temperature = 1.0, seed = 0))]
    fn sample<'py>(&self, py: Python<'py>, n: usize, temperature: f32, seed: u64) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let mut outs = compute(py, || {
                if n == 0 {
                    return Err(Error::param("flow sample", "n", "must be >= 1"));
                }
                let mut rec = self.ctx.recorder();
                let (x, _) = self.model.record_sample(&mut rec, n, temperature, seed, 0)?;
                read(rec, &[("samples", &x)])
            })?;
            let (_, t) = outs.remove(0);
            array(py, t.data, &t.shape)
        })
    }
}

/// The cGNF pose model (`vcortex.Cgnf`).
#[pyclass(name = "Cgnf", module = "vcortex._vcortex", frozen)]
pub struct PyCgnf {
    model: Cgnf,
    ctx: Arc<Context>,
}

impl PyCgnf {
    /// The condition of keypoints [B, J, 2] (observed [B, J] of 0/1, all observed by default) and
    /// a root [B, 3]; the prior (None) without keypoints and root.
    fn condition(&self, rec: &mut Recorder, kp: Host, observed: Host, root: Host) -> Result<Option<Condition>> {
        const OP: &str = "cgnf";
        let root = up(&self.ctx, root)?;
        let Some((kd, ks)) = kp else {
            if observed.is_some() {
                return Err(Error::param(OP, "observed", "given without keypoints"));
            }
            return match root {
                Some(r) => match *r.shape() {
                    [b, 3] => self.model.prior_condition(b, Some(&r)).map(Some),
                    _ => Err(Error::shape(OP, "root", r.shape(), "[B, 3]")),
                },
                None => Ok(None),
            };
        };
        let n = kd.len() / 2;
        let obs: Vec<bool> = match observed {
            None => vec![true; n],
            Some((od, os)) => {
                if od.iter().any(|&v| v != 0.0 && v != 1.0) {
                    return Err(Error::param(OP, "observed", "must hold only 0 and 1 (or booleans)"));
                }
                if od.len() != n {
                    return Err(Error::shape(OP, "observed", &os, format!("one value per keypoint ({n})")));
                }
                od.iter().map(|&v| v == 1.0).collect()
            }
        };
        if let Some(i) = kd.iter().position(|v| !v.is_finite()) {
            return Err(Error::param(OP, "keypoints", format!("element {i} is not finite")));
        }
        let kt = Tensor::from_f32(&self.ctx, kd, &ks)?;
        self.model.record_condition_with_root(rec, &kt, &obs, root.as_ref()).map(Some)
    }
}

#[pymethods]
impl PyCgnf {
    #[staticmethod]
    fn load(
        py: Python<'_>,
        ctx: &PyContext,
        weights: &Bound<'_, PyAny>,
        config: &str,
        is_path: bool,
    ) -> PyResult<Self> {
        let model = load_model::<Cgnf>(py, ctx, weights, config, is_path)?;
        Ok(PyCgnf { model, ctx: ctx.ctx.clone() })
    }

    #[pyo3(signature = (poses, keypoints = None, observed = None, root = None))]
    fn log_prob<'py>(
        &self,
        py: Python<'py>,
        poses: PyReadonlyArrayDyn<'py, f32>,
        keypoints: Arr<'py>,
        observed: Arr<'py>,
        root: Arr<'py>,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let shape = poses.shape().to_vec();
            let p = slice(&poses, "poses")?;
            let (k, o, r) = (opt(&keypoints, "keypoints")?, opt(&observed, "observed")?, opt(&root, "root")?);
            let outs = compute(py, || {
                let mut rec = self.ctx.recorder();
                let cond = self.condition(&mut rec, k, o, r)?;
                let pt = Tensor::from_f32(&self.ctx, p, &shape)?;
                let (z, lp) = self.model.record_log_prob(&mut rec, &pt, cond.as_ref())?;
                read(rec, &[("log_prob", &lp), ("z", &z)])
            })?;
            array_dict(py, outs)
        })
    }

    #[pyo3(signature = (n, keypoints = None, observed = None, root = None, temperature = 1.0, seed = 0))]
    #[allow(clippy::too_many_arguments)]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        keypoints: Arr<'py>,
        observed: Arr<'py>,
        root: Arr<'py>,
        temperature: f32,
        seed: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let (k, o, r) = (opt(&keypoints, "keypoints")?, opt(&observed, "observed")?, opt(&root, "root")?);
            let outs = compute(py, || {
                let mut rec = self.ctx.recorder();
                let cond = self.condition(&mut rec, k, o, r)?;
                let (x, lp) = self.model.record_sample(&mut rec, cond.as_ref(), 1, n, temperature, seed, 0)?;
                read(rec, &[("samples", &x), ("log_prob", &lp)])
            })?;
            array_dict(py, outs)
        })
    }

    #[pyo3(signature = (keypoints = None, observed = None, root = None))]
    fn mode<'py>(
        &self,
        py: Python<'py>,
        keypoints: Arr<'py>,
        observed: Arr<'py>,
        root: Arr<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let (k, o, r) = (opt(&keypoints, "keypoints")?, opt(&observed, "observed")?, opt(&root, "root")?);
            let mut outs = compute(py, || {
                let mut rec = self.ctx.recorder();
                let cond = self.condition(&mut rec, k, o, r)?;
                let mode = self.model.record_mode(&mut rec, cond.as_ref(), 1)?;
                read(rec, &[("mode", &mode)])
            })?;
            let (_, t) = outs.remove(0);
            array(py, t.data, &t.shape)
        })
    }
}

/// The Platypose sampler (`vcortex.Platypose`).
#[pyclass(name = "Platypose", module = "vcortex._vcortex", frozen)]
pub struct PyPlatypose {
    model: Platypose,
    ctx: Arc<Context>,
}

#[pymethods]
impl PyPlatypose {
    #[staticmethod]
    fn load(
        py: Python<'_>,
        ctx: &PyContext,
        weights: &Bound<'_, PyAny>,
        config: &str,
        is_path: bool,
    ) -> PyResult<Self> {
        let w = guarded(|| Weights::extract(weights))?;
        let c = ctx.ctx.clone();
        let model = compute(py, || {
            let (json, cp) = config_json(config, is_path, &["platypose"], "Platypose")?;
            let cfg = PlatyposeConfig::from_json(&json)
                .and_then(|c| c.schedule().map(|_| c))
                .map_err(|e| in_config(e, cp.as_deref()))?;
            let (sd, wp) = w.tensors()?;
            Platypose::new(&c, &sd, cfg).map_err(|e| in_files(e, wp.as_deref(), cp.as_deref()))
        })?;
        Ok(PyPlatypose { model, ctx: ctx.ctx.clone() })
    }

    #[pyo3(signature = (samples = 200, frames = None, observations = None, seed = 0))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        samples: usize,
        frames: Option<usize>,
        observations: Option<&Bound<'py, PyAny>>,
        seed: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let obs = observations.map(|o| host_dict(o, "observations")).transpose()?;
            let outs = compute(py, || {
                const OP: &str = "Platypose.sample";
                if samples == 0 {
                    return Err(Error::param(OP, "samples", "must be >= 1"));
                }
                let obs = obs.as_ref().map(|t| observations_from(&self.ctx, t)).transpose()?;
                let f = match (&obs, frames) {
                    (Some(o), Some(f)) if f != o.frames() => {
                        return Err(Error::param(
                            OP,
                            "frames",
                            format!("{f}, but the observations have {}", o.frames()),
                        ))
                    }
                    (Some(o), _) => o.frames(),
                    (None, Some(f)) => f,
                    (None, None) => return Err(Error::param(OP, "frames", "give frames or observations")),
                };
                let mut rec = self.ctx.recorder();
                let (x, _) =
                    self.model.record_sample(&mut rec, samples, f, obs.as_ref(), SamplerNoise::Philox { seed })?;
                let energy = obs.as_ref().map(|o| vcortex::ops::multiview_energy(&mut rec, &x, o)).transpose()?;
                let mut names = vec![("samples", &x)];
                if let Some((e, _)) = &energy {
                    names.push(("energy", e));
                }
                let outs = read(rec, &names)?;
                vcortex::models::platypose::check_samples(&outs[0].1.data, &outs[0].1.shape)?;
                Ok(outs)
            })?;
            array_dict(py, outs)
        })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySensorium>()?;
    m.add_class::<PyCotrain>()?;
    m.add_class::<PyLatent>()?;
    m.add_class::<PyVideo>()?;
    m.add_class::<PyVideoStream>()?;
    m.add_class::<PyLatentStream>()?;
    m.add_class::<PyFlow>()?;
    m.add_class::<PyCgnf>()?;
    m.add_class::<PyPlatypose>()?;
    Ok(())
}
