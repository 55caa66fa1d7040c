//! The video model's CPU reference forward (f64 accumulation), on the folded host weights.

use super::{Video, OP};
use crate::error::Result;
use crate::models::sensorium::side_input;
use crate::ops::Activation;
use crate::reference::{self, check_len};

impl Video {
    /// [`Video::predict`] with the CPU reference ops: rates [B, N, T'] and their shape.
    pub fn reference_forward(
        &self,
        video: &[f32],
        shape: &[usize],
        pupil_center: Option<&[f32]>,
        key: &str,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        let r = self.readout(key)?;
        let pupil = side_input(&r.shifter, pupil_center, key, "pupil_center")?;
        let [b, c, t, h, w] = self.config.features_shape(shape)?;
        let t_in = shape[2];
        if let Some((_, p)) = pupil {
            check_len(OP, "pupil_center", p, &[b, 2, t_in])?;
        }
        let (x, xs) = self.core.reference(video, shape)?;
        let x = match &self.gru {
            Some(g) => reference::conv_gru(&g.weights, &x, &xs, None)?.0,
            None => x,
        };
        // [B, C, T', H, W] → frames [B·T', C, H, W].
        let frames = super::core::swap_mid(&x, b, c, t, h * w);
        let shift = match pupil {
            Some((mlp, p)) => {
                let mut rows = vec![0f32; b * t * 2];
                for bi in 0..b {
                    for ti in 0..t {
                        for k in 0..2 {
                            rows[(bi * t + ti) * 2 + k] = p[(bi * 2 + k) * t_in + (t_in - t + ti)];
                        }
                    }
                }
                Some(mlp.reference(&rows, b * t)?)
            }
            None => None,
        };
        let y = reference::readout::gaussian_readout(
            &frames,
            &[b * t, c, h, w],
            &r.mu.data,
            &r.features.data,
            Some(&r.bias.data),
            shift.as_deref(),
            r.align_corners,
            Activation::Elu1,
        )?;
        let n = r.mu.shape[0];
        let mut out = vec![0f32; y.len()];
        for bi in 0..b {
            for ti in 0..t {
                for ni in 0..n {
                    out[(bi * n + ni) * t + ti] = y[(bi * t + ti) * n + ni];
                }
            }
        }
        Ok((out, vec![b, n, t]))
    }
}
