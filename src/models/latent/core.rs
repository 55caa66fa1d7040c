//! The latent model's `Factorized3dCore` (one input channel, valid convs, stride 1, affine batch
//! norm folded into the temporal conv's epilogue, ELU after every layer), loaded straight onto the
//! conv3d ops. Kept small and private so that a shared video core can replace it.

use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::ops::{Conv3dParams, Factorized3dParams};
use crate::runtime::Context;
use crate::tensor::Tensor;

use super::LatentCoreConfig;

/// One layer on the host: spatial conv [C, Cin, 1, k, k] + bias, temporal conv [C, C, kt, 1, 1] +
/// bias, the folded batch norm (scale, shift).
pub(super) struct CoreLayer {
    pub spatial_w: HostTensor,
    pub spatial_b: HostTensor,
    pub temporal_w: HostTensor,
    pub temporal_b: HostTensor,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

pub(super) struct DeviceLayer {
    pub spatial_w: Tensor,
    pub spatial_b: Tensor,
    pub temporal_w: Tensor,
    pub temporal_b: Tensor,
    pub scale: Tensor,
    pub shift: Tensor,
}

pub(super) fn params() -> Factorized3dParams {
    Factorized3dParams { spatial: Conv3dParams::default(), temporal: Conv3dParams::default() }
}

/// The weight names of layer `l` (`conv_spatial`, `conv_temporal` in layer 0, with a `_l` suffix
/// after).
pub(super) fn names(l: usize) -> (String, String, String) {
    let p = format!("core.features.layer{l}");
    let sfx = if l == 0 { String::new() } else { format!("_{l}") };
    (format!("{p}.conv_spatial{sfx}"), format!("{p}.conv_temporal{sfx}"), format!("{p}.norm"))
}

/// Kernel sizes (spatial, temporal) of layer `l`.
pub(super) fn kernels(c: &LatentCoreConfig, l: usize) -> (usize, usize) {
    if l == 0 {
        (c.spatial_input_kernel, c.temporal_input_kernel)
    } else {
        (c.spatial_hidden_kernel, c.temporal_hidden_kernel)
    }
}

pub(super) fn take(sd: &mut StateDict, c: &LatentCoreConfig) -> Result<Vec<CoreLayer>> {
    let mut layers = Vec::new();
    let mut cin = 1;
    for (l, &ch) in c.hidden_channels.iter().enumerate() {
        let (ks, kt) = kernels(c, l);
        let (sp, tp, np) = names(l);
        let spatial_w = sd.take(&format!("{sp}.weight"), &[ch, cin, 1, ks, ks])?;
        let spatial_b = sd.take(&format!("{sp}.bias"), &[ch])?;
        let temporal_w = sd.take(&format!("{tp}.weight"), &[ch, ch, kt, 1, 1])?;
        let temporal_b = sd.take(&format!("{tp}.bias"), &[ch])?;
        let mean = sd.take(&format!("{np}.running_mean"), &[ch])?;
        let var = sd.take(&format!("{np}.running_var"), &[ch])?;
        if let Some(i) = var.data.iter().position(|&v| v < 0.0) {
            return Err(Error::Weights(format!("weights: {np}.running_var[{i}] is negative")));
        }
        let w = sd.take(&format!("{np}.weight"), &[ch])?;
        let b = sd.take(&format!("{np}.bias"), &[ch])?;
        sd.accept_unused(&format!("{np}.num_batches_tracked"))?;
        let (mut scale, mut shift) = (vec![0f32; ch], vec![0f32; ch]);
        for i in 0..ch {
            let s = w.data[i] as f64 / (var.data[i] as f64 + c.batch_norm_eps as f64).sqrt();
            scale[i] = s as f32;
            shift[i] = (b.data[i] as f64 - mean.data[i] as f64 * s) as f32;
        }
        layers.push(CoreLayer { spatial_w, spatial_b, temporal_w, temporal_b, scale, shift });
        cin = ch;
    }
    Ok(layers)
}

pub(super) fn upload(ctx: &Context, layers: &[CoreLayer]) -> Result<Vec<DeviceLayer>> {
    let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
    layers
        .iter()
        .map(|l| {
            Ok(DeviceLayer {
                spatial_w: up(&l.spatial_w)?,
                spatial_b: up(&l.spatial_b)?,
                temporal_w: up(&l.temporal_w)?,
                temporal_b: up(&l.temporal_b)?,
                scale: Tensor::from_f32(ctx, &l.scale, &[l.scale.len()])?,
                shift: Tensor::from_f32(ctx, &l.shift, &[l.shift.len()])?,
            })
        })
        .collect()
}
