//! Every WGSL family through naga without a GPU: parse, validate, then write SPIR-V, MSL and HLSL
//! for every entry point, with the override constants at their defaults and at other values the
//! ops use, so a shader Metal or DX12 would reject fails here first.

use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use std::collections::BTreeSet;
use vcortex::shaders;

/// Override values to try per family, besides the defaults.
fn variants(name: &str) -> Vec<Vec<(&'static str, f64)>> {
    let mut v: Vec<Vec<(&'static str, f64)>> = vec![vec![]];
    for act in 1..=vcortex::ops::Activation::LAST_ID {
        v.push(vec![("ACT", act as f64), ("ACT_A", 2.0), ("ACT_B", 5.0)]);
    }
    match name {
        "conv2d" => {
            v.push(vec![("HAS_BIAS", 1.0), ("HAS_AFFINE", 1.0), ("ACT", 3.0)]);
            v.push(vec![("DW_TX", 8.0), ("DW_Q", 4.0), ("DB_1X1", 1.0)]);
            v.push(vec![("DB_WIDE", 1.0), ("HAS_AFFINE", 1.0)]);
            v.push(vec![("SPLIT", 1.0), ("DB_WIDE", 1.0), ("DB_1X1", 1.0), ("DW_Q", 4.0)]);
        }
        "conv3d" => {
            v.push(vec![("HAS_BIAS", 1.0), ("HAS_AFFINE", 1.0), ("ACT", 3.0)]);
            v.push(vec![("SPLIT", 1.0), ("NARROW", 1.0)]);
            v.push(vec![("NARROW", 1.0), ("HAS_BIAS", 1.0), ("ACT", 1.0)]);
        }
        "matmul" => {
            v.push(vec![("TRANS_B", 1.0), ("HAS_BIAS", 1.0), ("ACT", 7.0)]);
            v.push(vec![("SPLIT", 1.0), ("TRANS_B", 1.0)]);
        }
        "norm" => v.push(vec![("HAS_WEIGHT", 1.0), ("HAS_BIAS", 1.0)]),
        "divisive_norm" => {
            v.push(vec![("WRITE_CENTERED", 1.0), ("L1", 1.0), ("GAMMA", 1.0), ("BETA", 1.0)]);
            v.push(vec![("TH", 4.0), ("TW", 64.0), ("L1", 1.0)]);
        }
        "neurn" => v.push(vec![("WINDOW", 0.0), ("REVERSE", 1.0)]),
        "box_filter" => v.push(vec![("SQUARE", 1.0)]),
        "flows" => v.push(vec![("COUPLING", 1.0)]),
        "graph" => v.push(vec![("DIRECT", 1.0)]),
        "scores" => v.push(vec![("GROUPS", 1.0), ("CLOSE", 1.0)]),
        "gru" => v.push(vec![("SEQ", 1.0)]),
        "diffusion" => {
            v.push(vec![("NOISE", 1.0), ("CLIP", 1.0)]);
            v.push(vec![("NOISE", 2.0)]);
            v.push(vec![("NOISE", 2.0), ("THRESH", 1.0), ("GUIDE", 1.0)]);
        }
        "readout" => {
            v.push(vec![("ALIGN_CORNERS", 1.0), ("HAS_BIAS", 1.0), ("HAS_SHIFT", 1.0), ("SAMPLE", 1.0), ("ACT", 3.0)]);
            v.push(vec![("REDUCE", 1.0), ("ORDER", 1.0)]);
            v.push(vec![("CONV_BIAS", 1.0), ("ZIG_MAP", 1.0), ("VARIANCE", 1.0)]);
            v.push(vec![("ZIG_MAP", 2.0)]);
        }
        _ => {}
    }
    v
}

/// Entry points × override variants over all families (see the end of the test below).
const EXPECTED_TRANSLATIONS: usize = 1145;

#[test]
fn every_shader_parses_validates_and_translates() {
    let mut checked = 0;
    for src in shaders::ALL {
        let text = src.composed();
        let module = naga::front::wgsl::parse_str(&text)
            .unwrap_or_else(|e| panic!("{}.wgsl does not parse:\n{}", src.name, e.emit_to_string(&text)));
        let mut caps = Capabilities::default();
        if src.needs_f16 {
            caps |= Capabilities::SHADER_FLOAT16;
        }
        let info = Validator::new(ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}.wgsl does not validate:\n{}", src.name, e.emit_to_string(&text)));
        assert!(!module.entry_points.is_empty(), "{}.wgsl has no entry point", src.name);
        for ep in &module.entry_points {
            for consts in variants(src.name) {
                let mut pc = naga::back::PipelineConstants::default();
                for (k, val) in &consts {
                    assert!(
                        module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(*k)),
                        "{}.wgsl has no override {k} (a variant of this test names it)",
                        src.name
                    );
                    pc.insert(k.to_string(), *val);
                }
                let (m, i) =
                    naga::back::pipeline_constants::process_overrides(&module, &info, Some((ep.stage, &ep.name)), &pc)
                        .unwrap_or_else(|e| panic!("{}::{} overrides {consts:?}: {e}", src.name, ep.name));
                let what = format!("{}::{} {consts:?}", src.name, ep.name);

                let spv_opts = spv::Options { lang_version: (1, 3), ..Default::default() };
                let po = spv::PipelineOptions { shader_stage: ep.stage, entry_point: ep.name.clone() };
                spv::write_vec(&m, &i, &spv_opts, Some(&po)).unwrap_or_else(|e| panic!("SPIR-V {what}: {e}"));

                let msl_opts = msl::Options { lang_version: (2, 4), ..Default::default() };
                let mpo = msl::PipelineOptions { entry_point: Some((ep.stage, ep.name.clone())), ..Default::default() };
                msl::write_string(&m, &i, &msl_opts, &mpo).unwrap_or_else(|e| panic!("MSL {what}: {e}"));

                let hlsl_opts = hlsl::Options { shader_model: hlsl::ShaderModel::V6_2, ..Default::default() };
                let hpo = hlsl::PipelineOptions { entry_point: Some((ep.stage, ep.name.clone())) };
                let mut out = String::new();
                hlsl::Writer::new(&mut out, &hlsl_opts, &hpo)
                    .write(&m, &i, None)
                    .unwrap_or_else(|e| panic!("HLSL {what}: {e}"));
                checked += 1;
            }
        }
    }
    // Every entry point of every family, in each of its variants: a count kept by hand so that a
    // shader, entry point or variant that drops out of the loop shows here (update it with them).
    let want: usize = shaders::ALL
        .iter()
        .map(|s| {
            let m = naga::front::wgsl::parse_str(&s.composed()).unwrap();
            m.entry_points.len() * variants(s.name).len()
        })
        .sum();
    assert_eq!(checked, want, "translations checked");
    assert_eq!(checked, EXPECTED_TRANSLATIONS, "entry points × variants changed: update EXPECTED_TRANSLATIONS");
}

/// Each file in shaders/ is registered (so none escapes the test above).
#[test]
fn every_wgsl_file_is_registered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") || stem == "common" {
            continue;
        }
        assert!(shaders::get(&stem).is_some(), "{stem}.wgsl is not in shaders::ALL");
    }
}

/// No kernel stores into one component of a vector in workgroup memory. Invocations that each
/// write a component of the same vector race under WGSL's memory model (a component write may
/// touch the whole vector), and Metal and D3D compilers may turn it into a read-modify-write of
/// the vector, while Vulkan stores the component alone: a bug no test on Vulkan can show.
#[test]
fn no_component_stores_into_workgroup_vectors() {
    use naga::{AddressSpace, Block, Expression, Handle, Statement, TypeInner};

    fn root_global(f: &naga::Function, mut e: Handle<Expression>) -> Option<Handle<naga::GlobalVariable>> {
        loop {
            match f.expressions[e] {
                Expression::Access { base, .. } | Expression::AccessIndex { base, .. } => e = base,
                Expression::GlobalVariable(g) => return Some(g),
                _ => return None,
            }
        }
    }

    fn walk(block: &Block, visit: &mut dyn FnMut(Handle<Expression>)) {
        for stmt in block.iter() {
            match stmt {
                Statement::Store { pointer, .. } => visit(*pointer),
                Statement::Block(b) => walk(b, visit),
                Statement::If { accept, reject, .. } => {
                    walk(accept, visit);
                    walk(reject, visit);
                }
                Statement::Switch { cases, .. } => cases.iter().for_each(|c| walk(&c.body, visit)),
                Statement::Loop { body, continuing, .. } => {
                    walk(body, visit);
                    walk(continuing, visit);
                }
                _ => {}
            }
        }
    }

    let mut found = Vec::new();
    let mut stores = 0;
    for src in shaders::ALL {
        let text = src.composed();
        let module = naga::front::wgsl::parse_str(&text).expect("parses (checked above)");
        let mut caps = Capabilities::default();
        if src.needs_f16 {
            caps |= Capabilities::SHADER_FLOAT16;
        }
        let info = Validator::new(ValidationFlags::all(), caps).validate(&module).expect("validates");
        let mut check = |name: &str, f: &naga::Function, fi: &naga::valid::FunctionInfo| {
            walk(&f.body, &mut |ptr| {
                let Some(g) = root_global(f, ptr) else { return };
                if module.global_variables[g].space != AddressSpace::WorkGroup {
                    return;
                }
                stores += 1;
                // The stored-through pointer selects within a vector: its base points at one.
                let base = match f.expressions[ptr] {
                    Expression::Access { base, .. } | Expression::AccessIndex { base, .. } => base,
                    _ => return,
                };
                let on_vector = match fi[base].ty.inner_with(&module.types) {
                    TypeInner::Pointer { base, .. } => {
                        matches!(module.types[*base].inner, TypeInner::Vector { .. })
                    }
                    TypeInner::ValuePointer { size: Some(_), .. } => true,
                    _ => false,
                };
                if on_vector {
                    let var = module.global_variables[g].name.clone().unwrap_or_default();
                    found.push(format!("{}.wgsl {name}: a component of workgroup vector {var}", src.name));
                }
            });
        };
        for (h, f) in module.functions.iter() {
            check(f.name.as_deref().unwrap_or("?"), f, &info[h]);
        }
        for (i, ep) in module.entry_points.iter().enumerate() {
            check(&ep.name, &ep.function, info.get_entry_point(i));
        }
    }
    assert!(stores > 20, "only {stores} workgroup stores seen: the walk misses statements");
    assert!(found.is_empty(), "component stores into workgroup vectors:\n{}", found.join("\n"));
}

/// A padding field: named `_…` or `pad…` on either side; it carries nothing, so only the bytes it
/// fills count (through the struct sizes).
fn is_padding(name: &str) -> bool {
    name.starts_with('_') || name.starts_with("pad")
}

/// A WGSL type written as the Rust type of the same layout (`u32`, `[f32; 4]`).
fn rust_spelling(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    use naga::{ArraySize, ScalarKind, TypeInner};
    fn scalar(s: naga::Scalar) -> String {
        let k = match s.kind {
            ScalarKind::Uint => "u",
            ScalarKind::Sint => "i",
            ScalarKind::Float => "f",
            _ => "?",
        };
        format!("{k}{}", s.width as u32 * 8)
    }
    match &module.types[ty].inner {
        TypeInner::Scalar(s) => scalar(*s),
        TypeInner::Vector { size, scalar: s } => format!("[{}; {}]", scalar(*s), *size as u32),
        TypeInner::Array { base, size: ArraySize::Constant(n), .. } => {
            format!("[{}; {n}]", rust_spelling(module, *base))
        }
        other => format!("{other:?}"),
    }
}

/// Every parameter block the host uploads matches the WGSL struct it fills, read from naga's IR:
/// the same struct size, and the same non-padding fields in the same order with the same names,
/// offsets, sizes and types. Every uniform any shader declares is in the table, so a new family
/// or a new uniform struct without its Rust twin fails here too.
#[test]
fn host_params_structs_match_their_wgsl_structs() {
    use naga::{AddressSpace, TypeInner};
    let table = vcortex::ops::params_layouts();
    let mut problems = Vec::new();
    let mut uniforms = Vec::new();
    for src in shaders::ALL {
        let text = src.composed();
        let module = naga::front::wgsl::parse_str(&text).expect("parses (checked above)");
        for (_, g) in module.global_variables.iter() {
            if g.space == AddressSpace::Uniform {
                let ty = module.types[g.ty].name.clone().unwrap_or_default();
                uniforms.push((src.name, ty));
            }
        }
        for p in table.iter().filter(|p| p.shader == src.name) {
            let what = format!("{}.wgsl {} / Rust {}", p.shader, p.wgsl, p.rust);
            let Some((h, ty)) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some(p.wgsl)) else {
                problems.push(format!("{what}: no such WGSL struct"));
                continue;
            };
            if !module.global_variables.iter().any(|(_, g)| g.space == AddressSpace::Uniform && g.ty == h) {
                problems.push(format!("{what}: the WGSL struct is no uniform"));
            }
            let TypeInner::Struct { members, span } = &ty.inner else {
                problems.push(format!("{what}: not a struct"));
                continue;
            };
            if *span as usize != p.size {
                problems.push(format!("{what}: WGSL size {span}, Rust size {}", p.size));
            }
            let wgsl: Vec<(String, usize, usize, String)> = members
                .iter()
                .map(|m| {
                    let name = m.name.clone().unwrap_or_default();
                    let size = module.types[m.ty].inner.size(module.to_ctx()) as usize;
                    (name, m.offset as usize, size, rust_spelling(&module, m.ty))
                })
                .filter(|m| !is_padding(&m.0))
                .collect();
            let rust: Vec<(String, usize, usize, String)> = p
                .fields
                .iter()
                .filter(|f| !is_padding(f.name))
                .map(|f| (f.name.to_string(), f.offset, f.size, f.ty.to_string()))
                .collect();
            if wgsl != rust {
                let w: Vec<_> = wgsl.iter().filter(|m| !rust.contains(m)).collect();
                let r: Vec<_> = rust.iter().filter(|f| !wgsl.contains(f)).collect();
                problems.push(format!(
                    "{what}: fields differ (name, offset, size, type): WGSL only {w:?}, Rust only {r:?}"
                ));
            }
        }
    }
    for (shader, ty) in &uniforms {
        if !table.iter().any(|p| p.shader == *shader && p.wgsl == ty) {
            problems
                .push(format!("{shader}.wgsl uniform {ty}: no Rust parameter block in vcortex::ops::params_layouts"));
        }
    }
    for p in &table {
        if !uniforms.iter().any(|(s, t)| *s == p.shader && t == p.wgsl) {
            problems.push(format!(
                "Rust {} names {}.wgsl {}, which no uniform of that shader has",
                p.rust, p.shader, p.wgsl
            ));
        }
    }
    assert!(
        table.len() >= 25 && uniforms.len() == table.len(),
        "{} uniforms, {} Rust blocks",
        uniforms.len(),
        table.len()
    );
    assert!(problems.is_empty(), "Rust and WGSL parameter blocks differ:\n{}", problems.join("\n"));
}

/// The host sets overrides only through the typed keys of `shaders::overrides` (a string name
/// does not compile), so that list and the shaders are the two places a name lives: each family's
/// keys are exactly the overrides its WGSL declares (common.wgsl's in `common`), no more, no less,
/// and every key names a family that exists.
#[test]
fn override_keys_match_the_shaders() {
    use vcortex::shaders::overrides;
    let declared = |text: &str| -> BTreeSet<String> {
        let m = naga::front::wgsl::parse_str(text).expect("parses (checked above)");
        m.overrides.iter().filter_map(|(_, o)| o.name.clone()).collect()
    };
    let keys = |family: &str| -> BTreeSet<String> {
        overrides::ALL
            .iter()
            .flat_map(|f| f.iter())
            .filter(|o| o.family == family)
            .map(|o| o.name.to_string())
            .collect()
    };
    let mut problems = Vec::new();
    let common = declared(shaders::COMMON);
    if common != keys("common") {
        problems.push(format!("common.wgsl declares {common:?}, the keys are {:?}", keys("common")));
    }
    for src in shaders::ALL {
        let own: BTreeSet<String> = declared(&src.composed()).difference(&common).cloned().collect();
        if own != keys(src.name) {
            problems.push(format!("{}.wgsl declares {own:?}, the keys are {:?}", src.name, keys(src.name)));
        }
    }
    for family in overrides::ALL.iter().flat_map(|f| f.iter()).map(|o| o.family) {
        if family != "common" && shaders::get(family).is_none() {
            problems.push(format!("keys of {family}, which is no shader family"));
        }
    }
    let total: usize = overrides::ALL.iter().map(|f| f.len()).sum();
    assert!(total >= 35, "only {total} override keys");
    assert!(problems.is_empty(), "override keys out of step with the shaders:\n{}", problems.join("\n"));
}
