//! The MDM-style motion denoiser of Platypose (docs/ops.md, attention and the MDM denoiser): per-frame input linear, a
//! timestep token (sinusoidal table row → Linear → SiLU → Linear) prepended to the frames, sinusoidal positional
//! encoding, post-LN transformer encoder layers (GELU), output linear on the frames.
//!
//! Keys: `input_process.{weight,bias}` [E, D], `embed_timestep.{0,2}.{weight,bias}` [E, E],
//! `encoder.layers.{i}.*` (PyTorch `nn.TransformerEncoderLayer` names), `output_process.{weight,bias}`
//! [D, E]. Inference only; one forward is one recorded chain.

use std::collections::BTreeMap;

use super::transformer::EncoderLayer;
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{self, Activation};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MdmConfig {
    /// Features per frame (17 joints × 3 = 51).
    pub features: usize,
    pub latent: usize,
    pub heads: usize,
    pub layers: usize,
    /// Longest sequence (frames + 1) and largest timestep the sinusoidal table covers.
    pub max_len: usize,
}

/// The longest sequence (and the most timesteps) an MDM table may cover: past MDM's own 5000
/// positions, and far past what a sampler can visit in reasonable time (the timestep tokens are
/// computed on the host, each an E×E product).
pub const MAX_LEN: usize = 1 << 13;
/// The most encoder layers a config may ask for.
pub const MAX_LAYERS: usize = 1024;

impl MdmConfig {
    /// Checks the sizes against each other and against [`MAX_LEN`], [`MAX_LAYERS`] and
    /// `ops::MAX_GEOMETRY`, with nothing allocated; an error names the field (`mdm.max_len`, …).
    pub fn validate(&self) -> Result<()> {
        let bound = |name: &str, v: usize, lo: usize, hi: usize| -> Result<()> {
            if v < lo || v > hi {
                return Err(Error::param("mdm", format!("mdm.{name}"), format!("{v} must be in {lo}..={hi}")));
            }
            Ok(())
        };
        bound("features", self.features, 1, ops::MAX_GEOMETRY)?;
        bound("latent", self.latent, 2, ops::MAX_GEOMETRY)?;
        bound("heads", self.heads, 1, self.latent)?;
        bound("layers", self.layers, 0, MAX_LAYERS)?;
        // A timestep token and at least one frame.
        bound("max_len", self.max_len, 2, MAX_LEN)?;
        let e = self.latent;
        if e % 2 != 0 || e % self.heads != 0 {
            return Err(Error::param(
                "mdm",
                "mdm.latent",
                format!("{e} must be even and divisible by the {} heads", self.heads),
            ));
        }
        Ok(())
    }
}

/// The sinusoidal table: pe[p, 2i] = sin(p·ω_i), pe[p, 2i+1] = cos(p·ω_i), ω_i = 10000^(−2i/E).
/// Refuses (names `mdm.max_len`) a table whose size overflows or is past [`MAX_LEN`] rows.
pub fn sinusoidal_table(len: usize, e: usize) -> Result<Vec<f32>> {
    let n = len.checked_mul(e).filter(|_| len <= MAX_LEN && e <= ops::MAX_GEOMETRY).ok_or_else(|| {
        Error::param("mdm", "mdm.max_len", format!("a table of {len} × {e} is past {MAX_LEN} × {}", ops::MAX_GEOMETRY))
    })?;
    let mut pe = vec![0f32; n];
    for p in 0..len {
        for i in (0..e).step_by(2) {
            let w = (-(i as f64) * (10000f64).ln() / e as f64).exp();
            pe[p * e + i] = (p as f64 * w).sin() as f32;
            if i + 1 < e {
                pe[p * e + i + 1] = (p as f64 * w).cos() as f32;
            }
        }
    }
    Ok(pe)
}

pub struct Mdm {
    pub config: MdmConfig,
    /// The sinusoidal table [max_len, E] (the positions).
    pe_dev: Tensor,
    /// The timestep token of every timestep the model takes, [timesteps, E]: Linear → SiLU →
    /// Linear of the table's row t depends on the weights only, so it is computed once at load
    /// time (f64 accumulation).
    tokens: Tensor,
    /// How many timesteps have a token (max_len, or fewer for a sampler that needs fewer).
    timesteps: usize,
    input: (Tensor, Tensor),
    layers: Vec<EncoderLayer>,
    output: (Tensor, Tensor),
}

/// Buffers a real MDM checkpoint saves that the model recomputes (its sinusoidal tables).
const ACCEPTED_UNUSED: [&str; 2] = ["sequence_pos_encoder.pe", "embed_timestep.sequence_pos_encoder.pe"];

impl Mdm {
    /// Loads the denoiser with a timestep token for every t < `config.max_len`.
    pub fn load(ctx: &Context, sd: &BTreeMap<String, HostTensor>, config: MdmConfig) -> Result<Mdm> {
        Self::load_for_timesteps(ctx, sd, config, config.max_len)
    }

    /// Loads the denoiser with timestep tokens for t < `timesteps` only (a sampler of T training
    /// steps needs T of them, however long the position table is). Every size is checked before
    /// anything is allocated ([`MdmConfig::validate`], the device's limits); every weight through
    /// the models' one check (present, shaped, finite); keys the config cannot place are refused.
    pub fn load_for_timesteps(
        ctx: &Context,
        sd: &BTreeMap<String, HostTensor>,
        config: MdmConfig,
        timesteps: usize,
    ) -> Result<Mdm> {
        config.validate()?;
        let (d, e) = (config.features, config.latent);
        if timesteps == 0 || timesteps > config.max_len {
            return Err(Error::param(
                "mdm",
                "timesteps",
                format!("{timesteps} must be in 1..={} (mdm.max_len)", config.max_len),
            ));
        }
        // The two tables on the device: their bytes against the device's limits (validate keeps
        // the product far from overflow: 2^13 · 2^20 elements).
        let bytes = (config.max_len * e * 4) as u64;
        if bytes > ctx.max_tensor_bytes() || config.max_len * e > crate::tensor::MAX_ELEMENTS {
            return Err(Error::TooLarge {
                op: "mdm",
                what: format!("the positional table of mdm.max_len {} × mdm.latent {e}", config.max_len),
                amount: bytes,
                unit: "bytes",
                limit: ctx.max_tensor_bytes().min(4 * crate::tensor::MAX_ELEMENTS as u64),
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        let get = |k: String, shape: &[usize]| super::lookup("weights", sd, &k, Some(shape));
        // Every key this config reads, checked (shape, finiteness) before any upload.
        let mut known: std::collections::BTreeSet<String> = ACCEPTED_UNUSED.iter().map(|k| k.to_string()).collect();
        for (name, w) in [
            ("input_process", [e, d]),
            ("embed_timestep.0", [e, e]),
            ("embed_timestep.2", [e, e]),
            ("output_process", [d, e]),
        ] {
            get(format!("{name}.weight"), &w)?;
            get(format!("{name}.bias"), &w[..1])?;
            known.insert(format!("{name}.weight"));
            known.insert(format!("{name}.bias"));
        }
        for i in 0..config.layers {
            known.extend(super::transformer::LAYER_KEYS.iter().map(|k| format!("encoder.layers.{i}.{k}")));
        }
        // Never read, but a NaN there is still a sign of a corrupt checkpoint.
        for k in ACCEPTED_UNUSED.iter().filter(|k| sd.contains_key(**k)) {
            super::lookup("weights", sd, k, None)?;
        }
        let extra: Vec<&String> = sd.keys().filter(|k| !known.contains(*k)).collect();
        if !extra.is_empty() {
            let shown: Vec<String> = extra.iter().take(5).map(|k| format!("{k:?}")).collect();
            return Err(Error::Weights(format!(
                "weights: {} unexpected key(s) this config cannot place: {}{}",
                extra.len(),
                shown.join(", "),
                if extra.len() > 5 { ", …" } else { "" }
            )));
        }
        let pair = |name: &str, w: &[usize]| -> Result<(Tensor, Tensor)> {
            let up = |k: String, shape: &[usize]| -> Result<Tensor> {
                let t = get(k, shape)?;
                Tensor::from_f32(ctx, &t.data, &t.shape)
            };
            Ok((up(format!("{name}.weight"), w)?, up(format!("{name}.bias"), &w[..1])?))
        };
        let layers = (0..config.layers)
            .map(|i| EncoderLayer::load(ctx, sd, &format!("encoder.layers.{i}"), e, config.heads, 1e-5))
            .collect::<Result<Vec<_>>>()?;
        let pe = sinusoidal_table(config.max_len, e)?;
        let mut tokens = pe[..timesteps * e].to_vec();
        for (i, act) in [(0, Activation::Silu), (2, Activation::Identity)] {
            let w = get(format!("embed_timestep.{i}.weight"), &[e, e])?;
            let b = get(format!("embed_timestep.{i}.bias"), &[e])?;
            tokens = crate::reference::linear(&tokens, timesteps, e, &w.data, e, Some(&b.data), act);
        }
        Ok(Mdm {
            config,
            pe_dev: Tensor::from_f32(ctx, &pe, &[config.max_len, e])?,
            tokens: Tensor::from_f32(ctx, &tokens, &[timesteps, e])?,
            timesteps,
            input: pair("input_process", &[e, d])?,
            layers,
            output: pair("output_process", &[d, e])?,
        })
    }

    /// Records the denoiser on x [S, F, D] at timestep `t` (the same for the batch): [S, F, D].
    pub fn record(&self, rec: &mut Recorder, x: &Tensor, t: usize) -> Result<Tensor> {
        let f = match x.shape() {
            &[_, f, d] if d == self.config.features => f,
            sh => return Err(Error::shape("mdm", "x", sh, format!("[S, F, {}]", self.config.features))),
        };
        if f + 1 > self.config.max_len || t >= self.timesteps {
            return Err(Error::param(
                "mdm",
                "frames/timestep",
                format!(
                    "{f} frames or timestep {t} past the table of {} positions and {} timesteps",
                    self.config.max_len, self.timesteps
                ),
            ));
        }
        rec.atomic(|rec| {
            let id = Activation::Identity;
            let h = ops::linear(rec, x, &self.input.0, Some(&self.input.1), id)?;
            // The timestep token: row t of the precomputed table, for the whole batch.
            let mut seq = ops::attention::prepend_token(rec, &h, &self.tokens, Some(t), &self.pe_dev)?;
            for l in &self.layers {
                seq = l.record(rec, &seq)?;
            }
            let frames = ops::attention::drop_token(rec, &seq)?;
            ops::linear(rec, &frames, &self.output.0, Some(&self.output.1), id)
        })
    }
}

/// A random MDM state dict (PyTorch's default init scale, unit layer norms), for benchmarks and
/// tests: `ff` feed-forward width.
pub fn random_state_dict(config: &MdmConfig, ff: usize, seed: u64) -> BTreeMap<String, HostTensor> {
    let mut rng = crate::rng::SplitMix::new(seed);
    let mut sd = BTreeMap::new();
    let (d, e) = (config.features, config.latent);
    let mut lin = |sd: &mut BTreeMap<String, HostTensor>, name: String, o: usize, i: usize| {
        let s = 1.0 / (i as f32).sqrt();
        sd.insert(format!("{name}.weight"), HostTensor::new(vec![o, i], rng.vec(o * i, -s, s)));
        sd.insert(format!("{name}.bias"), HostTensor::new(vec![o], rng.vec(o, -s, s)));
    };
    lin(&mut sd, "input_process".into(), e, d);
    lin(&mut sd, "embed_timestep.0".into(), e, e);
    lin(&mut sd, "embed_timestep.2".into(), e, e);
    lin(&mut sd, "output_process".into(), d, e);
    for l in 0..config.layers {
        let p = format!("encoder.layers.{l}");
        lin(&mut sd, format!("{p}.self_attn.out_proj"), e, e);
        lin(&mut sd, format!("{p}.linear1"), ff, e);
        lin(&mut sd, format!("{p}.linear2"), e, ff);
        lin(&mut sd, format!("{p}.self_attn.in_proj"), 3 * e, e);
        for n in ["norm1", "norm2"] {
            sd.insert(format!("{p}.{n}.weight"), HostTensor::new(vec![e], vec![1.0; e]));
            sd.insert(format!("{p}.{n}.bias"), HostTensor::new(vec![e], vec![0.0; e]));
        }
    }
    // PyTorch names the packed projection in_proj_weight / in_proj_bias.
    for l in 0..config.layers {
        let p = format!("encoder.layers.{l}.self_attn");
        let w = sd.remove(&format!("{p}.in_proj.weight")).expect("made above");
        let b = sd.remove(&format!("{p}.in_proj.bias")).expect("made above");
        sd.insert(format!("{p}.in_proj_weight"), w);
        sd.insert(format!("{p}.in_proj_bias"), b);
    }
    sd
}
