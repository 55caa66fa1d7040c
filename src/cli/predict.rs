//! `vcortex predict`: neuronal responses of a Sensorium-style model or of the co-training twin,
//! batch by batch, per data key; the config's `"kind"` says which (docs/models.md).

use std::path::Path;

use vcortex::io::{check_output, write_safetensors, HostTensor};
use vcortex::models::latent::Latent;
use vcortex::models::{Cotrain, Sensorium, Video};
use vcortex::{Context, Error, Result};

use super::output::device_meta;
use super::progress::Progress;

/// The model a predict config describes.
enum Model {
    Image(ImageModel),
    Latent(Latent),
    Video(Video),
}

/// The models of images [N, C, H, W] (responses [N, neurons] per data key).
enum ImageModel {
    Sensorium(Sensorium),
    Cotrain(Cotrain),
}

impl Model {
    /// Reads the config and loads the model it names: `"kind": "cotrain"` is the co-training twin;
    /// `"sensorium"`, or no `"kind"` (the configs written before the field), a Sensorium model.
    fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Model> {
        let v = super::read_json(config)?;
        match v.get("kind").map(|k| (k, k.as_str())) {
            None | Some((_, Some("sensorium"))) => {
                Ok(Model::Image(ImageModel::Sensorium(Sensorium::load(ctx, weights, config)?)))
            }
            Some((_, Some("cotrain"))) => Ok(Model::Image(ImageModel::Cotrain(Cotrain::load(ctx, weights, config)?))),
            Some((_, Some("latent"))) => Ok(Model::Latent(Latent::load(ctx, weights, config)?)),
            Some((_, Some("video"))) => Ok(Model::Video(Video::load(ctx, weights, config)?)),
            Some((k, _)) => Err(Error::File {
                path: config.display().to_string(),
                reason: format!(
                    "\"kind\" is {k}; expected \"sensorium\", \"cotrain\" (the co-training twin), \"video\", \
                     \"latent\" (the latent video model), or no \"kind\""
                ),
            }),
        }
    }
}

impl ImageModel {
    fn data_keys(&self) -> Vec<&str> {
        match self {
            ImageModel::Sensorium(m) => m.data_keys(),
            ImageModel::Cotrain(m) => m.data_keys(),
        }
    }

    fn has_shifter(&self, key: &str) -> bool {
        matches!(self, ImageModel::Sensorium(m) if m.has_shifter(key))
    }

    fn has_modulator(&self, key: &str) -> bool {
        matches!(self, ImageModel::Sensorium(m) if m.has_modulator(key))
    }
}

/// What the latent video model takes beside the video: S samples, the responses it is
/// conditioned on (`--condition`) or, drawn from the prior, whose log-likelihood it gives
/// (`--targets`).
pub struct LatentArgs {
    pub samples: Option<usize>,
    pub condition: Option<std::path::PathBuf>,
    pub targets: Option<std::path::PathBuf>,
}

/// What one `predict` run reads and writes, whatever the model: the inputs file, the data key
/// asked for, the output file and the clips or images a submit.
pub struct Job<'a> {
    pub images: &'a Path,
    pub key: Option<String>,
    pub output: &'a Path,
    pub batch: usize,
}

impl Job<'_> {
    /// The data keys to run: the one asked for, or all of the model's.
    fn keys(&self, all: Vec<&str>) -> Vec<String> {
        match &self.key {
            Some(k) => vec![k.clone()],
            None => all.iter().map(|k| k.to_string()).collect(),
        }
    }

    /// A refusal of the inputs file.
    fn file_error(&self, reason: String) -> Error {
        Error::File { path: self.images.display().to_string(), reason }
    }

    /// Writes the outputs with the device's metadata and says what was written (`note` after the
    /// tensors' shapes).
    pub fn write(&self, ctx: &Context, outputs: &[(String, HostTensor)], note: &str) -> Result<()> {
        write_safetensors(self.output, outputs, &device_meta(ctx))?;
        let desc: Vec<String> = outputs.iter().map(|(k, t)| format!("{k} {:?}", t.shape)).collect();
        println!("wrote {} ({}{note})", self.output.display(), desc.join(", "));
        Ok(())
    }
}

pub fn run(
    weights: &Path,
    config: &Path,
    images: &Path,
    key: Option<String>,
    output: &Path,
    batch: usize,
    latent: LatentArgs,
) -> Result<()> {
    use vcortex::io::read_images;
    if batch == 0 {
        return Err(Error::param("predict", "batch", "must be >= 1"));
    }
    let mut inputs = vec![("--weights", weights), ("--config", config), ("--images", images)];
    inputs.extend(latent.condition.as_deref().map(|c| ("--condition", c)));
    inputs.extend(latent.targets.as_deref().map(|c| ("--targets", c)));
    check_output(output, &inputs)?;
    let ctx = Context::new()?;
    let job = Job { images, key, output, batch };
    match Model::load(&ctx, weights, config)? {
        Model::Latent(m) => super::latent::run(&ctx, &m, &job, latent),
        Model::Video(m) => {
            refuse_latent_args(&latent)?;
            run_video(&ctx, &m, read_images(images)?, &job)
        }
        Model::Image(m) => {
            refuse_latent_args(&latent)?;
            run_images(&ctx, &m, read_images(images)?, &job)
        }
    }
}

/// `--samples` and `--condition` belong to the latent model alone.
fn refuse_latent_args(latent: &LatentArgs) -> Result<()> {
    for (name, given) in [
        ("--samples", latent.samples.is_some()),
        ("--condition", latent.condition.is_some()),
        ("--targets", latent.targets.is_some()),
    ] {
        if given {
            return Err(Error::param("predict", name, "only the latent video model (\"kind\": \"latent\") takes it"));
        }
    }
    Ok(())
}

/// `predict` for a model of images: images [N, C, H, W] (with `pupil_center` [N, 2] and
/// `behavior` [N, B] where the readout takes them) in, responses [N, neurons] per data key out.
fn run_images(ctx: &Context, model: &ImageModel, inputs: vcortex::io::ModelInputs, job: &Job) -> Result<()> {
    let batch = job.batch;
    let found = inputs.names.join(", ");
    let (x, eye, behavior) = (inputs.images, inputs.eye, inputs.behavior);
    if x.shape.len() != 4 || x.shape[0] == 0 {
        return Err(job.file_error(format!("images have shape {:?}, expected [N, C, H, W]", x.shape)));
    }
    let keys = job.keys(model.data_keys());
    let n = x.shape[0];
    let per: usize = x.shape[1..].iter().product();
    let mut outputs = Vec::new();
    for key in &keys {
        let mut progress = Progress::new(n, "images");
        let mut responses = Vec::new();
        let mut neurons = 0;
        for start in (0..n).step_by(batch) {
            let b = batch.min(n - start);
            let mut shape = x.shape.clone();
            shape[0] = b;
            let e = match (&eye, model.has_shifter(key)) {
                (Some(e), true) => {
                    if e.shape != [n, 2] {
                        return Err(
                            job.file_error(format!("pupil_center (eye) has shape {:?}, expected [{n}, 2]", e.shape))
                        );
                    }
                    Some(&e.data[start * 2..(start + b) * 2])
                }
                (None, true) => {
                    return Err(job.file_error(format!(
                        "data key {key:?} has a shifter: a \"pupil_center\" (or \"eye\") tensor [N, 2] is \
                             needed; the file has {found}"
                    )))
                }
                _ => None,
            };
            let bh = match (&behavior, model.has_modulator(key)) {
                (Some(t), true) => {
                    if t.shape.len() != 2 || t.shape[0] != n {
                        return Err(job.file_error(format!("behavior has shape {:?}, expected [{n}, B]", t.shape)));
                    }
                    let w = t.shape[1];
                    Some(&t.data[start * w..(start + b) * w])
                }
                (None, true) => {
                    return Err(job.file_error(format!(
                        "data key {key:?} has a modulator: a \"behavior\" tensor [N, B] is needed; the file \
                             has {found}"
                    )))
                }
                _ => None,
            };
            let xs = &x.data[start * per..(start + b) * per];
            let y = match &model {
                ImageModel::Sensorium(m) => m.predict_full(ctx, xs, &shape, e, bh, key)?,
                ImageModel::Cotrain(m) => m.predict(ctx, xs, &shape, key)?,
            };
            neurons = y.len() / b;
            responses.extend(y);
            progress.update(start + b, key);
        }
        progress.finish();
        outputs.push((key.clone(), HostTensor::new(vec![n, neurons], responses)));
    }
    job.write(ctx, &outputs, "")
}

/// `predict` for a video model: clips [B, C, T, H, W] (and `pupil_center` [B, 2, T] for readouts
/// with a shifter) in, rates [B, N, T'] per data key out, `batch` clips a submit.
fn run_video(ctx: &Context, model: &Video, inputs: vcortex::io::ModelInputs, job: &Job) -> Result<()> {
    let batch = job.batch;
    let file_error = |reason: String| job.file_error(reason);
    let mut x = inputs.images;
    if x.shape.len() != 5 || x.shape[0] == 0 {
        return Err(file_error(format!("videos have shape {:?}, expected [B, C, T, H, W]", x.shape)));
    }
    // Behaviour [B, K, T] beside the video: broadcast over each frame as the extra channels.
    if let Some(bh) = &inputs.behavior {
        let (data, shape) =
            model.clip_with_behavior(&x.data, &x.shape, &bh.data, &bh.shape).map_err(|e| file_error(e.to_string()))?;
        x = HostTensor::new(shape, data);
    }
    let (n, t) = (x.shape[0], x.shape[2]);
    if let Some(p) = &inputs.eye {
        if p.shape != [n, 2, t] {
            return Err(file_error(format!("pupil_center has shape {:?}, expected [{n}, 2, {t}]", p.shape)));
        }
    }
    let keys = job.keys(model.data_keys());
    let per: usize = x.shape[1..].iter().product();
    let mut outputs = Vec::new();
    for key in &keys {
        if model.has_shifter(key) && inputs.eye.is_none() {
            return Err(file_error(format!(
                "data key {key:?} has a shifter: a \"pupil_center\" tensor [B, 2, T] is needed; the file has {}",
                inputs.names.join(", ")
            )));
        }
        let mut progress = Progress::new(n, "videos");
        let mut rates = Vec::new();
        let mut shape = Vec::new();
        for start in (0..n).step_by(batch) {
            let b = batch.min(n - start);
            let mut xs_shape = x.shape.clone();
            xs_shape[0] = b;
            let p = inputs
                .eye
                .as_ref()
                .filter(|_| model.has_shifter(key))
                .map(|p| &p.data[start * 2 * t..(start + b) * 2 * t]);
            let (y, ys) = model.predict(ctx, &x.data[start * per..(start + b) * per], &xs_shape, p, key)?;
            shape = ys;
            rates.extend(y);
            progress.update(start + b, key);
        }
        progress.finish();
        shape[0] = n;
        outputs.push((key.clone(), HostTensor::new(shape, rates)));
    }
    job.write(ctx, &outputs, "")
}
