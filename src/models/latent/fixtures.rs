//! A latent model with random weights (upstream key names), for benchmarks and tests.

use std::collections::BTreeMap;

use super::{Latent, LatentConfig, LatentK};
use crate::error::Result;
use crate::io::HostTensor;

impl Latent {
    /// Random weights in the upstream key names, as `from_state_dict` reads them (with
    /// `fitted_k.<key>` where the config's k is fitted). The latent
    /// weights are drawn non-zero (upstream initialises them to 0) so that z matters.
    pub fn random_state_dict(config: &LatentConfig, seed: u64) -> BTreeMap<String, HostTensor> {
        let mut rng = crate::rng::SplitMix::new(seed);
        let mut sd = BTreeMap::new();
        let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
            let n = shape.iter().product();
            sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
        };
        // The core's keys and shapes as the shared video core reads them (none for an invalid
        // config, which from_state_dict refuses by name).
        let plan = config.core.video_core().plan().unwrap_or_default();
        let mut cin = 1;
        for l in &plan {
            for c in &l.convs {
                let fan: usize = c.shape[1..].iter().product();
                let s = (3.0 / fan as f32).sqrt();
                put(format!("{}.weight", c.prefix), c.shape.to_vec(), -s, s);
                put(format!("{}.bias", c.prefix), vec![c.shape[0]], -0.1, 0.1);
            }
            let (ch, np) = (l.channels, format!("{}.norm", l.prefix));
            put(format!("{np}.running_mean"), vec![ch], -0.2, 0.2);
            put(format!("{np}.running_var"), vec![ch], 0.5, 1.5);
            put(format!("{np}.weight"), vec![ch], 0.8, 1.2);
            put(format!("{np}.bias"), vec![ch], -0.1, 0.1);
            cin = ch;
        }
        let r = &config.readout;
        let (key, n) = (&r.data_key, r.neurons);
        let [kt, kc] = r.kernel;
        put(format!("readout.{key}._mu"), vec![1, n, 1, 2], -1.0, 1.0);
        put(format!("readout.{key}.sigma"), vec![1, n, 1, 2], 0.0, 0.5);
        put(format!("readout.{key}._features"), vec![1, cin, 2, n], -0.3, 0.3);
        put(format!("readout.{key}.conv.weight"), vec![2, 1, kt, kc], -0.3, 0.3);
        put(format!("readout.{key}.conv.bias"), vec![2], -0.2, 0.2);
        if r.bias {
            put(format!("readout.{key}.bias"), vec![n], -0.5, 0.5);
        }
        let e = &config.encoder;
        let s = (1.0 / n as f32).sqrt();
        put(format!("encoder.linear.{key}.weight"), vec![e.hidden_dim, n], -s, s);
        put(format!("encoder.linear.{key}.bias"), vec![e.hidden_dim], -0.1, 0.1);
        put("encoder.norm.weight".into(), vec![e.hidden_dim], 0.8, 1.2);
        put("encoder.norm.bias".into(), vec![e.hidden_dim], -0.1, 0.1);
        let s = (1.0 / e.hidden_gru as f32).sqrt();
        put("encoder.GRU.weight_ih_l0".into(), vec![3 * e.hidden_gru, e.hidden_dim], -s, s);
        put("encoder.GRU.weight_hh_l0".into(), vec![3 * e.hidden_gru, e.hidden_gru], -s, s);
        put("encoder.GRU.bias_ih_l0".into(), vec![3 * e.hidden_gru], -s, s);
        put("encoder.GRU.bias_hh_l0".into(), vec![3 * e.hidden_gru], -s, s);
        put("encoder.final_linear.weight".into(), vec![e.output_dim, e.hidden_gru], -s, s);
        put("encoder.final_linear.bias".into(), vec![e.output_dim], -0.1, 0.1);
        put(format!("latent_feature.{key}_q"), vec![e.output_dim, n], -0.3, 0.3);
        put(format!("latent_feature.{key}_theta"), vec![e.output_dim, n], -0.3, 0.3);
        put("sigma".into(), vec![1], 0.5, 1.0);
        put(format!("logk.{key}"), vec![1, n], -0.5, 0.5);
        put(format!("logloc.{key}"), vec![1, n], -5.5, -4.5);
        if config.k == LatentK::Fitted {
            put(format!("fitted_k.{key}"), vec![n], 0.4, 2.5);
        }
        sd
    }

    /// A model with random weights (for benchmarks and tests), as `from_state_dict` builds it.
    pub fn random(config: LatentConfig, seed: u64) -> Result<Latent> {
        let sd = Self::random_state_dict(&config, seed);
        Self::from_state_dict(config, sd)
    }
}
