//! The MDM-style motion denoiser of Platypose (models.md §9): per-frame input linear, a timestep
//! token (sinusoidal table row → Linear → SiLU → Linear) prepended to the frames, sinusoidal
//! positional encoding, post-LN transformer encoder layers (GELU), output linear on the frames.
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

/// The sinusoidal table: pe[p, 2i] = sin(p·ω_i), pe[p, 2i+1] = cos(p·ω_i), ω_i = 10000^(−2i/E).
pub fn sinusoidal_table(len: usize, e: usize) -> Vec<f32> {
    let mut pe = vec![0f32; len * e];
    for p in 0..len {
        for i in (0..e).step_by(2) {
            let w = (-(i as f64) * (10000f64).ln() / e as f64).exp();
            pe[p * e + i] = (p as f64 * w).sin() as f32;
            if i + 1 < e {
                pe[p * e + i + 1] = (p as f64 * w).cos() as f32;
            }
        }
    }
    pe
}

pub struct Mdm {
    pub config: MdmConfig,
    /// The sinusoidal table [max_len, E] (the positions).
    pe_dev: Tensor,
    /// The timestep token of every timestep, [max_len, E]: Linear → SiLU → Linear of the table's
    /// row t depends on the weights only, so it is computed once at load time (f64 accumulation).
    tokens: Tensor,
    input: (Tensor, Tensor),
    layers: Vec<EncoderLayer>,
    output: (Tensor, Tensor),
}

impl Mdm {
    pub fn load(ctx: &Context, sd: &BTreeMap<String, HostTensor>, config: MdmConfig) -> Result<Mdm> {
        let (d, e) = (config.features, config.latent);
        if e % 2 != 0 || config.heads == 0 || e % config.heads != 0 {
            return Err(Error::param(
                "mdm",
                "latent",
                format!("{e} must be even and divisible by the {} heads", config.heads),
            ));
        }
        let pair = |name: &str, w: &[usize]| -> Result<(Tensor, Tensor)> {
            let get = |k: String, shape: &[usize]| -> Result<Tensor> {
                let t = sd.get(&k).ok_or_else(|| Error::Case(format!("weights: missing key {k:?}")))?;
                if t.shape != shape {
                    return Err(Error::Case(format!("weights: {k:?} has shape {:?}, expected {shape:?}", t.shape)));
                }
                Tensor::from_f32(ctx, &t.data, &t.shape)
            };
            Ok((get(format!("{name}.weight"), w)?, get(format!("{name}.bias"), &w[..1])?))
        };
        let layers = (0..config.layers)
            .map(|i| EncoderLayer::load(ctx, sd, &format!("encoder.layers.{i}"), e, config.heads, 1e-5))
            .collect::<Result<Vec<_>>>()?;
        let pe = sinusoidal_table(config.max_len, e);
        let host = |k: String, shape: &[usize]| -> Result<&HostTensor> {
            let t = sd.get(&k).ok_or_else(|| Error::Case(format!("weights: missing key {k:?}")))?;
            if t.shape != shape {
                return Err(Error::Case(format!("weights: {k:?} has shape {:?}, expected {shape:?}", t.shape)));
            }
            Ok(t)
        };
        let mut tokens = pe.clone();
        for (i, act) in [(0, Activation::Silu), (2, Activation::Identity)] {
            let w = host(format!("embed_timestep.{i}.weight"), &[e, e])?;
            let b = host(format!("embed_timestep.{i}.bias"), &[e])?;
            tokens = crate::reference::linear(&tokens, config.max_len, e, &w.data, e, Some(&b.data), act);
        }
        Ok(Mdm {
            config,
            pe_dev: Tensor::from_f32(ctx, &pe, &[config.max_len, e])?,
            tokens: Tensor::from_f32(ctx, &tokens, &[config.max_len, e])?,
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
        if f + 1 > self.config.max_len || t >= self.config.max_len {
            return Err(Error::param(
                "mdm",
                "frames/timestep",
                format!("past the table of {} positions", self.config.max_len),
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
