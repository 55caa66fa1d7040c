//! The bench suite's table of cases: every name is the one docs/bench.md lists, each is
//! selected by a filter of its own name (with the cases whose names contain it, as a filter is a
//! substring), and a few run under that filter on the small suite, within the bench tolerance.

use crate::common::ctx;
use vcortex::bench::{self, BenchOptions};

/// The case names in the first column of docs/bench.md's "Cases" table.
fn documented_cases() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/bench.md")).unwrap();
    let section = &doc[doc.find("## Cases").expect("the Cases section")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut names = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        names.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    names
}

#[test]
fn the_table_holds_the_documented_cases_each_once() {
    let names: Vec<&str> = bench::case_names().collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a case name twice: {names:?}");
    let mut documented = documented_cases();
    documented.sort();
    assert_eq!(unique, documented, "the suite's cases and docs/bench.md's table differ");
}

/// A filter of a case's exact name selects that case, once, and besides it only the cases whose
/// names contain it (`divnorm_5x5` also selects `divnorm_5x5_separable`); no case hides behind
/// another's guard.
#[test]
fn every_case_is_selected_by_its_own_name() {
    let all: Vec<&str> = bench::case_names().collect();
    for name in &all {
        let got = bench::selected(Some(name));
        assert_eq!(got.iter().filter(|n| *n == name).count(), 1, "--filter {name} selects {got:?}");
        let want: Vec<&str> = all.iter().copied().filter(|n| n.contains(name)).collect();
        assert_eq!(got, want, "--filter {name}");
    }
    assert_eq!(bench::selected(None), all);
    assert!(bench::selected(Some("no-such-case")).is_empty());
}

/// Cases that were once reachable only through another case's guard, and the latency case (a
/// host-to-host call, not a recording), run alone under their exact names on the small suite:
/// one row each, named, without error, within the bench tolerance.
#[test]
fn cases_run_under_their_exact_names() {
    for name in ["neurn_k3_forward", "divnorm_5x5_separable", "sensorium_latency_b1", "conv_1x1_64_single"] {
        let opts = BenchOptions { filter: Some(name.to_string()), ..Default::default() };
        let mut reported = Vec::new();
        let results = bench::run_suite(ctx(), &opts, |r| reported.push(r.case.clone()));
        let names: Vec<&str> = results.iter().map(|r| r.case.as_str()).collect();
        assert_eq!(names, bench::selected(Some(name)), "--filter {name}");
        assert_eq!(reported, names, "--filter {name}: reported rows");
        for r in &results {
            assert!(r.error.is_none(), "--filter {name}: {}: {:?}", r.case, r.error);
        }
        let r = results.iter().find(|r| r.case == name).expect("the named case");
        assert!(r.ms > 0.0 && r.ms.is_finite(), "{name}: {} ms", r.ms);
        assert!(r.max_err.is_some_and(|e| e <= 1e-3), "{name}: max_err {:?}", r.max_err);
        if name.starts_with("sensorium_latency") {
            assert_eq!(r.timer, "wall");
        }
    }
}

/// The JSON device line says how the suite timed the cases, as the context's timing structure.
#[test]
fn the_device_line_names_the_timing_structure() {
    let d = bench::device_json(ctx(), true);
    let want = ctx().timing_structure().map_or("wall", |t| t.name());
    assert_eq!(d["timing"], want);
    assert!(bench::timing_line(ctx()).contains(want));
}
