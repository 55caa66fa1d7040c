//! Output files: written atomically under a temporary name unique to the process and the write,
//! checked before any work (folder, not a folder, writable, not one of the inputs), and never
//! left half-written: no `.partial` and no new output after any failure. And `vcortex sample`'s
//! submits in parts (for its progress), which give the one-submit sample.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{data_dir, vcortex, write_tensors};
use vcortex::io::{check_output, read_safetensors, write_atomic_with, write_safetensors, HostTensor};
use vcortex::Error;

/// A fresh, empty temporary folder for one test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vcortex-files-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every name in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[track_caller]
fn no_partial(dir: &Path) {
    let left: Vec<String> = names(dir).into_iter().filter(|n| n.contains("partial")).collect();
    assert!(left.is_empty(), "temporary files left in {}: {left:?}", dir.display());
}

/// The path and reason of an `Error::File`.
#[track_caller]
fn file_error(e: Error) -> (String, String) {
    match e {
        Error::File { path, reason } => (path, reason),
        other => panic!("expected Error::File, got {other:?}"),
    }
}

fn golden(name: &str) -> PathBuf {
    data_dir("golden").join(format!("{name}.case.safetensors"))
}

/// A relu case of 2^21 elements: the golden activation_relu input tiled, plus `shift` (so that a
/// write takes long enough for two processes' writes to overlap).
fn big_relu_case(path: &Path, shift: f32) -> Vec<f32> {
    let g = read_safetensors(&golden("activation_relu")).unwrap();
    let x: Vec<f32> = g.tensors["input"].data.iter().cycle().take(1 << 21).map(|v| v + shift).collect();
    let mut meta = HashMap::new();
    meta.insert("op".to_string(), "activation".to_string());
    meta.insert("kind".to_string(), "relu".to_string());
    write_safetensors(path, &[("input".into(), HostTensor::new(vec![x.len()], x.clone()))], &meta).unwrap();
    x.iter().map(|v| v.max(0.0)).collect()
}

/// Two `vcortex eval` processes at once into `r.a` and `r.b` of one folder, eight times: each
/// exits 0 with its own case's result, and no temporary file is left (before the fix, both used
/// `r.safetensors.partial` and in about half the runs one output held the other's result or was
/// missing).
#[test]
fn concurrent_runs_write_their_own_outputs() {
    let dir = scratch("concurrent");
    let (ca, cb) = (dir.join("a.case.safetensors"), dir.join("b.case.safetensors"));
    let (want_a, want_b) = (big_relu_case(&ca, 0.0), big_relu_case(&cb, 1.0));
    assert_ne!(want_a, want_b);
    let (ra, rb) = (dir.join("r.a"), dir.join("r.b"));
    let bin = env!("CARGO_BIN_EXE_vcortex");
    for round in 0..8 {
        let spawn = |case: &Path, out: &Path| {
            Command::new(bin)
                .args(["eval", "--cpu", case.to_str().unwrap(), "-o", out.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (pa, pb) = (spawn(&ca, &ra), spawn(&cb, &rb));
        for (p, out, want) in [(pa, &ra, &want_a), (pb, &rb, &want_b)] {
            let o = p.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}: {}", out.display(), String::from_utf8_lossy(&o.stderr));
            let got = read_safetensors(out).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(
                got.tensors["output"].data == *want,
                "round {round}: {} holds another case's result",
                out.display()
            );
        }
        no_partial(&dir);
        std::fs::remove_file(&ra).unwrap();
        std::fs::remove_file(&rb).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An output that cannot be written is refused before the work, by every command that writes
/// one, with an `Error::File` naming the output and why: a missing folder, an output that is a
/// folder, a folder under a regular file (ENOTDIR). The inputs given do not exist, so a command
/// that did its work first would fail on them instead. Nothing is created.
#[test]
fn unwritable_outputs_are_refused_before_the_work() {
    let dir = scratch("refused");
    std::fs::write(dir.join("plain"), b"x").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let cases: [(PathBuf, &str); 4] = [
        (dir.join("missing/out.safetensors"), "does not exist"),
        (dir.join("sub"), "is a folder"),
        (dir.join("plain/out.safetensors"), "is not a folder"),
        (dir.join("plain/deeper/out.safetensors"), "Not a directory"),
    ];
    let gone = s(dir.join("no-such-input"));
    for (out, why) in &cases {
        let o = s(out.clone());
        // Library: the check itself, and eval_file.
        let (path, reason) = file_error(check_output(out, &[]).unwrap_err());
        assert!(path == o && reason.contains(why), "{o}: {reason}");
        let e = vcortex::eval::eval_file(&golden("activation_relu"), out, &vcortex::eval::Backend::Cpu).unwrap_err();
        let (path, reason) = file_error(e);
        assert!(path == o && reason.contains(why), "eval_file {o}: {path}: {reason}");
        let commands: Vec<Vec<&str>> = vec![
            vec!["eval", "--cpu", &gone, "-o", &o],
            vec!["predict", "--weights", &gone, "--config", &gone, "--images", &gone, "-o", &o],
            vec!["sample", "--weights", &gone, "--config", &gone, "--frames", "8", "-o", &o],
            vec!["flow", "density", "--weights", &gone, "--config", &gone, "--input", &gone, "-o", &o],
            vec!["flow", "sample", "--weights", &gone, "--config", &gone, "--n", "4", "-o", &o],
            vec!["bench", "--filter", "no-such-case", "--json", &o],
        ];
        for args in &commands {
            let r = vcortex(args);
            let err = String::from_utf8_lossy(&r.stderr);
            assert!(!r.status.success(), "{args:?} succeeded");
            assert!(
                err.starts_with(&format!("vcortex: {o}: ")) && err.contains(why) && err.lines().count() == 1,
                "{args:?}: {err}"
            );
            assert!(r.stdout.is_empty(), "{args:?} started its work: {}", String::from_utf8_lossy(&r.stdout));
        }
    }
    assert_eq!(names(&dir), ["plain", "sub"]);
    assert!(names(&dir.join("sub")).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `eval X -o X`, and any command whose output is one of its inputs (by another spelling of the
/// path, or a hard link), is refused with an error naming both; the input is untouched.
#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = scratch("same");
    let case = dir.join("c.safetensors");
    std::fs::copy(golden("activation_relu"), &case).unwrap();
    let before = std::fs::read(&case).unwrap();
    let other = dir.join("sub/../c.safetensors");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let link = dir.join("hard.safetensors");
    std::fs::hard_link(&case, &link).unwrap();
    let c = case.to_str().unwrap();
    for out in [case.clone(), other, link] {
        let o = out.to_str().unwrap();
        let r = vcortex(&["eval", "--cpu", c, "-o", o]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "eval {c} -o {o} succeeded");
        assert!(
            err.starts_with(&format!("vcortex: {o}: "))
                && err.contains("same file as the input case")
                && err.contains(c),
            "{err}"
        );
        let (path, reason) = file_error(check_output(&out, &[("--case", &case)]).unwrap_err());
        assert!(path == o && reason.contains(c), "{reason}");
    }
    // The other commands name the flag of the input they would overwrite.
    let w = dir.join("w.safetensors");
    std::fs::copy(&case, &w).unwrap();
    let (ws, gone) = (w.to_str().unwrap(), dir.join("none").to_str().unwrap().to_string());
    for (args, flag) in [
        (vec!["predict", "--weights", ws, "--config", &gone, "--images", &gone, "-o", ws], "--weights"),
        (vec!["predict", "--weights", &gone, "--config", &gone, "--images", ws, "-o", ws], "--images"),
        (vec!["sample", "--weights", &gone, "--config", ws, "--frames", "8", "-o", ws], "--config"),
        (vec!["sample", "--weights", &gone, "--config", &gone, "--observations", ws, "-o", ws], "--observations"),
        (vec!["flow", "density", "--weights", &gone, "--config", &gone, "--input", ws, "-o", ws], "--input"),
        (vec!["flow", "sample", "--weights", &gone, "--config", &gone, "--n", "2", "--input", ws, "-o", ws], "--input"),
    ] {
        let r = vcortex(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains(&format!("same file as the input {flag} {ws}")), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(&case).unwrap(), before, "the case was overwritten");
    assert_eq!(std::fs::read(&w).unwrap(), before, "an input was overwritten");
    no_partial(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write that fails part-way (a full disk) or a rename that fails (the output is a folder)
/// leaves no temporary file, and an existing output stays as it was.
#[test]
fn failed_writes_leave_no_partial_file() {
    let dir = scratch("failed");
    let out = dir.join("r.safetensors");
    let t = HostTensor::new(vec![4096], vec![1.5; 4096]);
    write_safetensors(&out, &[("x".into(), t.clone())], &Default::default()).unwrap();
    let old = std::fs::read(&out).unwrap();
    // The disk fills up after a few bytes.
    let e = write_atomic_with(&out, |f| {
        use std::io::Write;
        f.write_all(b"half of it")?;
        Err(std::io::Error::from_raw_os_error(28))
    })
    .unwrap_err();
    let (path, reason) = file_error(e);
    assert!(path == out.to_str().unwrap() && reason.contains("cannot write") && reason.contains("space"), "{reason}");
    assert_eq!(std::fs::read(&out).unwrap(), old, "the old output changed");
    no_partial(&dir);
    // The output is a folder (not empty, so that no system renames over it).
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("keep"), b"k").unwrap();
    let (path, reason) =
        file_error(write_safetensors(&sub, &[("x".into(), t.clone())], &Default::default()).unwrap_err());
    assert!(path == sub.to_str().unwrap() && reason.contains("cannot move into place"), "{reason}");
    assert_eq!(names(&sub), ["keep"]);
    no_partial(&dir);
    // A file-size limit (ulimit -f: EFBIG, as a full disk would give ENOSPC) on the whole binary:
    // the old output stays, nothing else appears.
    let g = golden("conv2d_a_basic");
    let sh = format!(
        "ulimit -f 1; trap '' XFSZ; exec '{}' eval --cpu '{}' -o '{}'",
        env!("CARGO_BIN_EXE_vcortex"),
        g.display(),
        out.display()
    );
    let r = Command::new("sh").args(["-c", &sh]).output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "a write past the file-size limit succeeded");
    assert!(err.starts_with(&format!("vcortex: {}: cannot write", out.display())) && err.lines().count() == 1, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), old, "the old output changed");
    assert_eq!(names(&dir), ["r.safetensors", "sub"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk and a read-only place for real: a 64 KiB tmpfs (only where mount works, as root;
/// skipped elsewhere with a note). The write fails with ENOSPC and nothing is left; remounted
/// read-only, the output is refused before the work; the tmpfs is unmounted.
#[test]
fn a_full_disk_or_a_read_only_place_leaves_nothing() {
    let dir = scratch("tmpfs");
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&dir).output();
    if !ok.is_ok_and(|o| o.status.success()) {
        eprintln!("a_full_disk_or_a_read_only_place_leaves_nothing: skipped (cannot mount a tmpfs here)");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _guard = Unmount(&dir);
    let out = dir.join("big.safetensors");
    let t = HostTensor::new(vec![1 << 16], vec![0.25; 1 << 16]);
    let (path, reason) = file_error(write_safetensors(&out, &[("x".into(), t)], &Default::default()).unwrap_err());
    assert!(path == out.to_str().unwrap() && reason.contains("cannot write"), "{reason}");
    assert!(names(&dir).is_empty(), "left on a full disk: {:?}", names(&dir));
    // And a small one still fits, so the check and the rename work there.
    let small = HostTensor::new(vec![8], vec![1.0; 8]);
    write_tensors(&dir.join("small.safetensors"), &[("x", &small)]);
    assert_eq!(names(&dir), ["small.safetensors"]);
    // Read-only (EROFS stops root too, unlike a chmod): refused before the work, nothing created.
    let ro = Command::new("mount").args(["-o", "remount,ro"]).arg(&dir).status().unwrap();
    assert!(ro.success(), "remount read-only");
    let o = dir.join("r.safetensors");
    let (path, reason) = file_error(check_output(&o, &[]).unwrap_err());
    assert!(path == o.to_str().unwrap() && reason.contains("Read-only"), "{reason}");
    let r = vcortex(&["eval", "--cpu", golden("activation_relu").to_str().unwrap(), "-o", o.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("cannot create a file in") && err.contains("Read-only"), "{err}");
    assert_eq!(names(&dir), ["small.safetensors"]);
}

/// The committed MDM's sizes, as a Platypose config's `mdm` entry.
const MDM_SIZES: &str = r#""mdm": {"features": 51, "latent": 32, "heads": 4, "layers": 2, "max_len": 64}"#;

/// `vcortex sample` on the committed MDM with the config `{MDM_SIZES, sampler}` written to
/// `dir/c.json`, output `dir/s.safetensors`, the given further arguments and environment.
fn run_sample(dir: &Path, sampler: &str, args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, PathBuf) {
    let cfg = dir.join("c.json");
    std::fs::write(&cfg, format!("{{{MDM_SIZES}, {sampler}}}")).unwrap();
    let w = data_dir("mdm").join("weights.safetensors");
    let out = dir.join("s.safetensors");
    let mut c = Command::new(env!("CARGO_BIN_EXE_vcortex"));
    c.args(["sample", "--weights", w.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    c.args(args).args(["-o", out.to_str().unwrap()]).envs(env.iter().copied());
    (c.output().unwrap(), out)
}

/// `vcortex sample` submits one part per sampler step so that it can show its progress
/// (Recorder::submit_in_parts): the same sample, bit for bit, as one submit (guided ancestral
/// sampling with the engine's noise and a skipped start, so every kind of step is cut), and the
/// progress counts every part once, in order.
#[test]
fn sampling_in_parts_gives_the_one_submit_sample() {
    use vcortex::models::platypose::{observations_from, Platypose, PlatyposeConfig, SamplerNoise};
    let sd = vcortex::io::read_weights(&data_dir("mdm").join("weights.safetensors")).unwrap().tensors;
    let cam = read_safetensors(&data_dir("platypose").join("cameras.safetensors")).unwrap().tensors;
    let ctx = crate::common::ctx();
    let obs = observations_from(ctx, &cam).unwrap();
    for (kind, skip) in [("ancestral", 1), ("ddim", 0)] {
        let cfg = PlatyposeConfig::from_json(&format!(
            r#"{{{MDM_SIZES}, "train_steps": 50, "steps": 6, "sampler": "{kind}", "skip_timesteps": {skip},
                "energy_scale": 30.0, "substeps": 2}}"#
        ))
        .unwrap();
        let p = Platypose::new(ctx, &sd, cfg).unwrap();
        let steps = p.indices().len();
        let record = || {
            let mut rec = ctx.recorder();
            let (x, _) = p.record_sample(&mut rec, 5, 8, Some(&obs), SamplerNoise::Philox { seed: 3 }).unwrap();
            let h = rec.read_back(&x);
            (rec, x, h)
        };
        let (rec, _x, h) = record();
        let whole: Vec<u32> = rec.submit().unwrap().f32(h).iter().map(|v| v.to_bits()).collect();
        let (rec, _x, h) = record();
        let parts = rec.labels().iter().filter(|l| **l == "sampler_step").count();
        assert_eq!(parts, steps + skip, "{kind}: one step dispatch per step (and the forward noising)");
        let mut seen = Vec::new();
        let done = rec.submit_in_parts("sampler_step", |d, n| seen.push((d, n))).unwrap();
        let cut: Vec<u32> = done.f32(h).iter().map(|v| v.to_bits()).collect();
        assert!(whole.iter().all(|b| f32::from_bits(*b).is_finite()), "{kind}: a finite sample");
        assert!(cut == whole, "{kind}: the sample submitted in parts differs from one submit");
        assert_eq!(seen, (1..=parts).map(|d| (d, parts)).collect::<Vec<_>>(), "{kind}: progress");
    }
    // The command: one submit per step and one for the rest.
    let dir = scratch("sample");
    let (r, out) = run_sample(&dir, r#""steps": 5"#, &["--samples", "2", "--frames", "8"], &[]);
    let said = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(said.contains("5 steps") && said.contains("in 6 submits"), "{said}");
    assert_eq!(read_safetensors(&out).unwrap().tensors["samples"].shape, [2, 8, 51]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A guided run whose refinement diverges (energy_scale 1000 on the golden cameras: every sample
/// leaves f32's range) is never written silently: `sample` fails, names the first non-finite
/// sample, and writes nothing. The same run at the golden scale writes finite samples.
#[test]
fn a_diverging_sample_is_refused_not_written() {
    let dir = scratch("diverge");
    let cams = data_dir("platypose").join("cameras.safetensors");
    for (scale, ok) in [(30.0, true), (1000.0, false)] {
        let sampler =
            format!(r#""train_steps": 50, "steps": 5, "sampler": "ancestral", "energy_scale": {scale}, "substeps": 3"#);
        let args = ["--observations", cams.to_str().unwrap(), "--samples", "3"];
        let (r, out) = run_sample(&dir, &sampler, &args, &[]);
        let err = String::from_utf8_lossy(&r.stderr);
        if ok {
            assert!(r.status.success(), "scale {scale}: {err}");
            let s = &read_safetensors(&out).unwrap().tensors["samples"];
            assert!(s.data.iter().all(|v| v.is_finite()), "scale {scale}: finite samples");
            std::fs::remove_file(&out).unwrap();
        } else {
            assert!(!r.status.success(), "scale {scale}: a non-finite sample was written with exit 0");
            assert!(err.contains("samples") && err.contains("sample 0 of 3 is not finite"), "{err}");
            // Progress lines (`[sample] ...`) may come first on a slow machine; one error line.
            assert_eq!(err.lines().filter(|l| l.starts_with("vcortex:")).count(), 1, "one error line: {err}");
            assert!(err.lines().all(|l| l.starts_with("vcortex:") || l.starts_with('[')), "{err}");
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "scale {scale}: only the config is left, found {left:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Off a terminal the progress is plain lines (`[what] done/total unit, N s left`), never `\r`
/// frames, and the last says the run is complete; `VCORTEX_PROGRESS=never` silences it.
#[test]
fn progress_off_a_terminal_is_plain_lines() {
    let dir = scratch("progress");
    for mode in ["always", "never"] {
        let args = ["--samples", "2", "--frames", "8"];
        let (r, _) = run_sample(&dir, r#""train_steps": 50, "steps": 4"#, &args, &[("VCORTEX_PROGRESS", mode)]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success(), "{err}");
        assert!(!err.contains('\r'), "{mode}: no \\r frames off a terminal: {err:?}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("[sample] ")).collect();
        if mode == "never" {
            assert!(lines.is_empty(), "{err}");
        } else {
            assert!(!lines.is_empty() && lines.iter().all(|l| l.contains("/4 steps")), "{err}");
            assert!(lines.last().unwrap().starts_with("[sample] 4/4 steps"), "{err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `vcortex info` where XDG_RUNTIME_DIR is unset (a server, a container) prints no Wayland false
/// alarm ("XDG_RUNTIME_DIR is invalid or not set", twice, from libwayland under Mesa's Vulkan).
#[test]
fn info_has_no_wayland_false_alarm() {
    let r = Command::new(env!("CARGO_BIN_EXE_vcortex")).arg("info").env_remove("XDG_RUNTIME_DIR").output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    assert!(String::from_utf8_lossy(&r.stdout).contains("chosen:"));
}
