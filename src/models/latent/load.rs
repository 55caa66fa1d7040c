//! State dict → latent model (the upstream `ZIGEncoder`'s key names, read through [`StateDict`]):
//! the core as the shared [`VideoCore`] (batch norms folded), the ZIG readout, the encoder, k and
//! loc mapped; and the upload.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Device, Encoder, Latent, LatentConfig, LatentK, Readout};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::video::{VideoCore, VideoCoreConfig};
use crate::models::StateDict;
use crate::ops::GruWeights;
use crate::runtime::Context;
use crate::tensor::Tensor;

const WHAT: &str = "weights";

impl Latent {
    /// Loads weights (safetensors, PyTorch key names) and a JSON config, and uploads them.
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Latent> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = LatentConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = StateDict::read(WHAT, weights)?;
        let mut m = Self::from_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
        m.upload(ctx)?;
        Ok(m)
    }

    /// Builds the model on the host from a state_dict; refuses missing, extra or mis-shaped keys.
    /// Upstream's empty tensors (`mice.<key>` [80, 0] at `mice_dim` 0) are accepted.
    pub fn from_state_dict(config: LatentConfig, tensors: BTreeMap<String, HostTensor>) -> Result<Latent> {
        Self::from_dict(config, StateDict::new(WHAT, tensors))
    }

    fn from_dict(config: LatentConfig, mut sd: StateDict) -> Result<Latent> {
        config.validate()?;
        let core = VideoCore::from_state_dict(VideoCoreConfig::ThreeD(config.core.video_core()), &mut sd)?;
        let c = core.out_channels();
        let r = &config.readout;
        let (key, n) = (r.data_key.as_str(), r.neurons);
        let [kt, kc] = r.kernel;
        let pre = format!("readout.{key}");
        // Stored positions, or a grid_mean_predictor's (evaluated once, in f64).
        let mu = if !sd.has(&format!("{pre}._mu")) && sd.has(&format!("{pre}.source_grid")) {
            crate::models::sensorium::predicted_mu(&mut sd, &pre, n, r.grid_mean_final_tanh, key)?
        } else {
            sd.take(&format!("{pre}._mu"), &[1, n, 1, 2])?
        };
        let features = sd.take(&format!("{pre}._features"), &[1, c, 2, n])?;
        let readout = Readout {
            mu: HostTensor::new(vec![n, 2], mu.data),
            conv_weight: sd.take(&format!("{pre}.conv.weight"), &[2, 1, kt, kc])?,
            conv_bias: sd.take(&format!("{pre}.conv.bias"), &[2])?,
            features: HostTensor::new(vec![c, n, 2], features.data),
            bias: if r.bias { Some(sd.take(&format!("{pre}.bias"), &[n])?) } else { None },
        };
        // sigma ([1, N, 2, 2], [1, N, 1, 2] or [1, N, 1, 1] by gauss_type) only matters when
        // sampling positions (training).
        let sk = format!("{pre}.sigma");
        if let Some(s) = sd.shape(&sk).map(|s| s.to_vec()) {
            if !matches!(s[..], [1, m, 2, 2] | [1, m, 1, 2] | [1, m, 1, 1] if m == n) {
                return Err(Error::Weights(format!(
                    "{WHAT}: \"{sk}\" has shape {s:?}, expected [1, {n}, 2, 2], [1, {n}, 1, 2] or [1, {n}, 1, 1]"
                )));
            }
            sd.accept_unused(&sk)?;
        }
        let e = &config.encoder;
        let gru = GruWeights::take(&mut sd, "encoder.GRU")?;
        let (gi, gh) = gru.sizes()?;
        if (gi, gh) != (e.hidden_dim, e.hidden_gru) {
            return Err(Error::Weights(format!(
                "{WHAT}: \"encoder.GRU.weight_ih_l0\" is a GRU {gi} → {gh}, the config says {} → {}",
                e.hidden_dim, e.hidden_gru
            )));
        }
        if gru.bias_ih.is_none() {
            return Err(Error::Weights(format!("{WHAT}: missing key \"encoder.GRU.bias_ih_l0\"")));
        }
        let encoder = Encoder {
            linear_w: sd.take(&format!("encoder.linear.{key}.weight"), &[e.hidden_dim, n])?,
            linear_b: sd.take(&format!("encoder.linear.{key}.bias"), &[e.hidden_dim])?,
            norm_w: sd.take("encoder.norm.weight", &[e.hidden_dim])?,
            norm_b: sd.take("encoder.norm.bias", &[e.hidden_dim])?,
            gru,
            final_w: sd.take("encoder.final_linear.weight", &[e.output_dim, e.hidden_gru])?,
            final_b: sd.take("encoder.final_linear.bias", &[e.output_dim])?,
        };
        let l = e.output_dim;
        let w_q = sd.take(&format!("latent_feature.{key}_q"), &[l, n])?;
        let w_theta = sd.take(&format!("latent_feature.{key}_theta"), &[l, n])?;
        let sigma = sd.take("sigma", &[1])?.data[0];
        let logk = sd.take(&format!("logk.{key}"), &[1, n])?;
        let logloc = sd.take(&format!("logloc.{key}"), &[1, n])?;
        let (k, loc) = match config.k {
            LatentK::Logk => (
                logk.data.iter().map(|&v| crate::reference::zig::elu1_map(v as f64) as f32).collect(),
                logloc.data.iter().map(|&v| (v as f64).exp() as f32).collect(),
            ),
            LatentK::Fitted => {
                let fk = format!("fitted_k.{key}");
                if !sd.has(&fk) {
                    return Err(Error::Weights(format!(
                        "{WHAT}: missing key \"{fk}\" (the fitted k per neuron, \"k\": \"fitted\")"
                    )));
                }
                let k = sd.take(&fk, &[n])?;
                if let Some(i) = k.data.iter().position(|&v| !(v > 0.0 && v.is_finite())) {
                    return Err(Error::Weights(format!("{WHAT}: {fk}[{i}] = {} is not a positive number", k.data[i])));
                }
                (k.data, vec![config.loc; n])
            }
        };
        // The per-session GRU inputs of models with mice_dim > 0 (not used at mice_dim = 0, where
        // upstream saves an empty [80, 0]).
        sd.accept_prefix("mice.")?;
        sd.finish()?;
        Ok(Latent { config, core, readout, encoder, w_q, w_theta, sigma, k, loc, dev: None })
    }

    /// Puts the weights on the device.
    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
        let (r, e) = (&self.readout, &self.encoder);
        let n = self.config.readout.neurons;
        self.core.upload(ctx)?;
        self.dev = Some(Device {
            mu: up(&r.mu)?,
            conv_weight: up(&r.conv_weight)?,
            conv_bias: up(&r.conv_bias)?,
            features: up(&r.features)?,
            bias: r.bias.as_ref().map(up).transpose()?,
            linear_w: up(&e.linear_w)?,
            linear_b: up(&e.linear_b)?,
            norm_w: up(&e.norm_w)?,
            norm_b: up(&e.norm_b)?,
            gru: crate::ops::Gru::upload(ctx, &e.gru)?,
            final_w: up(&e.final_w)?,
            final_b: up(&e.final_b)?,
            w_q: up(&self.w_q)?,
            w_theta: up(&self.w_theta)?,
            k: Tensor::from_f32(ctx, &self.k, &[n])?,
            loc: Tensor::from_f32(ctx, &self.loc, &[n])?,
        });
        Ok(())
    }
}
