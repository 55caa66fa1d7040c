//! Golden cases from PyTorch (made by scripts/golden_torch.py; see data/golden/README.md) run
//! through `vcortex eval` on the GPU and on the CPU reference, held to docs/eval-format.md's tolerances.

use std::path::{Path, PathBuf};

use crate::common::ctx;
use vcortex::eval::{self, check_tolerance, Backend};
use vcortex::io::read_safetensors;

fn cases() -> Vec<PathBuf> {
    let dir = crate::common::data_dir("golden");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden data directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".case.safetensors")))
        .collect();
    v.sort();
    v
}

fn expected_of(case: &Path) -> PathBuf {
    PathBuf::from(case.to_str().unwrap().replace(".case.safetensors", ".expected.safetensors"))
}

/// Elementwise ops get the elementwise tolerance; the rest are reductions or convolutions.
fn elementwise(op: &str, case: &vcortex::io::TensorFile) -> bool {
    match op {
        "activation" | "ddpm_step" | "ddim_step" | "affine_coupling" | "rq_spline" | "zig_loglik" | "grid_sample" => {
            true
        }
        "poisson_nll" => case.metadata.get("reduction").is_none_or(|r| r == "none"),
        _ => false,
    }
}

fn check_backend(backend: &Backend, label: &str) {
    let all = cases();
    assert!(all.len() >= 129, "expected the 129 committed golden cases, found {}", all.len());
    let out_dir = std::env::temp_dir().join(format!("vcortex-golden-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    for case in &all {
        let name = case.file_name().unwrap().to_str().unwrap().replace(".case.safetensors", "");
        let out_path = out_dir.join(format!("{name}.out.safetensors"));
        eval::eval_file(case, &out_path, backend).unwrap_or_else(|e| panic!("{label} {name}: {e}"));
        let got = read_safetensors(&out_path).unwrap();
        let case_file = read_safetensors(case).unwrap();
        let want = read_safetensors(&expected_of(case)).unwrap();
        let op = got.metadata.get("op").cloned().unwrap_or_default();
        assert!(got.metadata.contains_key("adapter") && got.metadata.contains_key("backend"), "{name}: metadata");
        assert_eq!(got.tensors.keys().collect::<Vec<_>>(), want.tensors.keys().collect::<Vec<_>>(), "{name}: outputs");
        for (k, w) in &want.tensors {
            let g = &got.tensors[k];
            assert_eq!(g.shape, w.shape, "{label} {name} {k}: shape");
            let (excess, maxerr) = check_tolerance(&g.data, &w.data, elementwise(&op, &case_file));
            assert!(excess <= 0.0, "{label} {name} {k}: max |err| {maxerr:.3e} is past eval-format.md's tolerance");
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn golden_cases_on_the_gpu() {
    check_backend(&Backend::Gpu(ctx()), "gpu");
}

#[test]
fn golden_cases_on_the_cpu_reference() {
    check_backend(&Backend::Cpu, "cpu");
}
