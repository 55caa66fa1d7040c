//! Random MDM weights for benchmarks and tests.

use std::collections::BTreeMap;

use super::MdmConfig;
use crate::io::HostTensor;

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
