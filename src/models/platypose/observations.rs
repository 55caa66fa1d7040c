//! Platypose's observations from tensors (module docs of `models::platypose` for the names):
//! the cameras, the keypoints and their optional weights and root trajectory.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{Camera, Observations};
use crate::runtime::Context;

/// Cameras from observation tensors (see the module docs for the names).
pub fn cameras_from(t: &BTreeMap<String, HostTensor>) -> Result<Vec<Camera>> {
    let get = |names: &[&str], per: &[usize]| -> Result<&HostTensor> {
        let h = names
            .iter()
            .find_map(|n| t.get(*n))
            .ok_or_else(|| Error::Input(format!("observations: missing tensor {:?}", names[0])))?;
        if h.shape.len() != per.len() + 1 || h.shape[1..] != *per {
            let mut want = vec!["C".to_string()];
            want.extend(per.iter().map(|v| v.to_string()));
            return Err(Error::Input(format!(
                "observations: {:?} has shape {:?}, expected [{}]",
                names[0],
                h.shape,
                want.join(", ")
            )));
        }
        Ok(h)
    };
    let r = get(&["R"], &[3, 3])?;
    let c = r.shape[0];
    let tv = get(&["t"], &[3])?;
    let k = get(&["intrinsics", "intrinsics_fx_fy_cx_cy_skew"], &[5])?;
    let rad = get(&["radial", "radial_k1_k2_k3"], &[3])?;
    let tan = get(&["tangential", "tangential_p1_p2"], &[2])?;
    for (h, name) in [(tv, "t"), (k, "intrinsics"), (rad, "radial"), (tan, "tangential")] {
        if h.shape[0] != c {
            return Err(Error::Input(format!("observations: {name:?} holds {} cameras, R holds {c}", h.shape[0])));
        }
    }
    let v = |h: &HostTensor, i: usize| h.data[i] as f64;
    Ok((0..c)
        .map(|ci| Camera {
            rotation: [0, 1, 2].map(|a| [0, 1, 2].map(|b| v(r, ci * 9 + a * 3 + b))),
            centre: [0, 1, 2].map(|a| v(tv, ci * 3 + a)),
            intrinsics: [0, 1, 2, 3, 4].map(|a| v(k, ci * 5 + a)),
            radial: [0, 1, 2].map(|a| v(rad, ci * 3 + a)),
            tangential: [0, 1].map(|a| v(tan, ci * 2 + a)),
        })
        .collect())
}

/// Observations from tensors (cameras, keypoints, optional weights and root), uploaded.
pub fn observations_from(ctx: &Context, t: &BTreeMap<String, HostTensor>) -> Result<Observations> {
    let cams = cameras_from(t)?;
    let kp = ["keypoints", "x2d"]
        .iter()
        .find_map(|n| t.get(*n))
        .ok_or_else(|| Error::Input("observations: missing tensor \"keypoints\" [C, F, J, 2]".into()))?;
    let (f, j) = match kp.shape[..] {
        [c, f, j, 2] if c == cams.len() => (f, j),
        _ => {
            return Err(Error::Input(format!(
                "observations: \"keypoints\" has shape {:?}, expected [{}, F, J, 2]",
                kp.shape,
                cams.len()
            )))
        }
    };
    for name in ["weights", "root"] {
        if let Some(h) = t.get(name) {
            let want: &[usize] = if name == "root" { &[f, 3] } else { &kp.shape };
            if h.shape != want {
                return Err(Error::Input(format!("observations: {name:?} has shape {:?}, expected {want:?}", h.shape)));
            }
        }
    }
    Observations::new(
        ctx,
        cams,
        &kp.data,
        t.get("weights").map(|h| &h.data[..]),
        t.get("root").map(|h| &h.data[..]),
        f,
        j,
    )
}
