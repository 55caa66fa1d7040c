//! The README's first Rust program: a conv with a folded batch norm and ELU, then a layer norm,
//! recorded as one chain and submitted once.
//!
//!     cargo run --release --example quickstart
//!
//! In a project of your own: `vcortex = { path = "..." }` under `[dependencies]`.

use vcortex::{ops, Context, Tensor};

fn main() -> Result<(), vcortex::Error> {
    let (n, c, o) = (2, 1, 8);
    let images: Vec<f32> = (0..n * c * 36 * 64).map(|i| (i % 97) as f32 / 97.0).collect();
    let weights: Vec<f32> = (0..o * c * 9 * 9).map(|i| ((i % 13) as f32 - 6.0) / 81.0).collect();
    let (bn_scale, bn_shift) = (vec![1.5f32; o], vec![-0.1f32; o]);

    let ctx = Context::new()?; // the best adapter; a typed error if there is none
    let x = Tensor::from_f32(&ctx, &images, &[n, c, 36, 64])?;
    let w = Tensor::from_f32(&ctx, &weights, &[o, c, 9, 9])?;
    let scale = Tensor::from_f32(&ctx, &bn_scale, &[o])?;
    let shift = Tensor::from_f32(&ctx, &bn_shift, &[o])?;

    let mut rec = ctx.recorder(); // ops record here; nothing runs yet
    let epilogue = ops::Epilogue { scale: Some(&scale), shift: Some(&shift), act: ops::Activation::Elu };
    let y = ops::conv2d(&mut rec, &x, &w, None, &ops::Conv2dParams::default(), &epilogue)?;
    let y = ops::layer_norm(&mut rec, &y, 3, None, None, 1e-5, ops::Activation::Identity)?;
    let h = rec.read_back(&y); // read back only what you ask for
    let out = rec.submit()?.f32(h); // one submit for the whole chain

    println!("{} on {}: output {:?}, first values {:?}", "quickstart", ctx.adapter(), y.shape(), &out[..4]);
    Ok(())
}
