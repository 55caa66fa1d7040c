//! State dict → MDM: every key read through [`StateDict`], the timestep tokens computed once, and
//! the upload.

use std::collections::BTreeMap;

use super::{Mdm, MdmConfig, MAX_LEN, WHAT};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::transformer::{EncoderLayer, EncoderWeights};
use crate::models::StateDict;
use crate::ops::{self, Activation};
use crate::runtime::Context;
use crate::tensor::Tensor;

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
        Self::from_dict(ctx, StateDict::borrowed(WHAT, sd), config, timesteps)
    }

    /// [`Mdm::load_for_timesteps`] from a state dict (a file's: `Platypose::load`).
    pub(crate) fn from_dict(ctx: &Context, mut sd: StateDict, config: MdmConfig, timesteps: usize) -> Result<Mdm> {
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
        // Every key this config reads, checked (present, shaped, finite) before any upload.
        let input = pair(&mut sd, "input_process", [e, d])?;
        let embed0 = pair(&mut sd, "embed_timestep.0", [e, e])?;
        let embed2 = pair(&mut sd, "embed_timestep.2", [e, e])?;
        let output = pair(&mut sd, "output_process", [d, e])?;
        let layers = (0..config.layers)
            .map(|i| EncoderWeights::take(&mut sd, &format!("encoder.layers.{i}"), e, config.heads))
            .collect::<Result<Vec<_>>>()?;
        // Never read, but a NaN there is still a sign of a corrupt checkpoint.
        for k in ACCEPTED_UNUSED {
            sd.accept_unused(k)?;
        }
        sd.finish()?;
        let pe = sinusoidal_table(config.max_len, e)?;
        let mut tokens = pe[..timesteps * e].to_vec();
        for ((w, b), act) in [(&embed0, Activation::Silu), (&embed2, Activation::Identity)] {
            (tokens, _) = crate::reference::linear(&tokens, &[timesteps, e], &w.data, &w.shape, Some(&b.data), act)?;
        }
        let up = |(w, b): &(HostTensor, HostTensor)| -> Result<(Tensor, Tensor)> {
            Ok((Tensor::from_f32(ctx, &w.data, &w.shape)?, Tensor::from_f32(ctx, &b.data, &b.shape)?))
        };
        Ok(Mdm {
            config,
            pe_dev: Tensor::from_f32(ctx, &pe, &[config.max_len, e])?,
            tokens: Tensor::from_f32(ctx, &tokens, &[timesteps, e])?,
            timesteps,
            input: up(&input)?,
            layers: layers.iter().map(|w| EncoderLayer::upload(ctx, w, config.heads, 1e-5)).collect::<Result<_>>()?,
            output: up(&output)?,
        })
    }
}

/// `{name}.weight` of shape `w` and `{name}.bias` of `w[0]` values.
fn pair(sd: &mut StateDict, name: &str, w: [usize; 2]) -> Result<(HostTensor, HostTensor)> {
    Ok((sd.take(&format!("{name}.weight"), &w)?, sd.take(&format!("{name}.bias"), &w[..1])?))
}
