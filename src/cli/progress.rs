//! The progress reporter of the long commands (`predict`, `sample`): one line on stderr.

use std::io::Write;

/// A one-line progress bar on stderr, shown once a run is expected to take more than a second.
pub struct Progress {
    total: usize,
    /// What is counted ("images", "steps").
    unit: &'static str,
    start: std::time::Instant,
    shown: bool,
    /// Whether stderr is a terminal: a bar redrawn in place (`\r`) there, else plain lines of the
    /// form `[what] done/total unit, N s left`, at most one a second, for logs.
    terminal: bool,
    last_line: f64,
    /// `VCORTEX_PROGRESS`: `always` shows it from the first update, `never` not at all; otherwise
    /// once the run is expected to take more than a second.
    mode: Option<bool>,
}

impl Progress {
    pub fn new(total: usize, unit: &'static str) -> Self {
        use std::io::IsTerminal;
        Progress {
            total,
            unit,
            start: std::time::Instant::now(),
            shown: false,
            terminal: std::io::stderr().is_terminal(),
            last_line: f64::NEG_INFINITY,
            mode: match std::env::var("VCORTEX_PROGRESS").as_deref() {
                Ok("always") => Some(true),
                Ok("never") => Some(false),
                _ => None,
            },
        }
    }
    pub fn update(&mut self, done: usize, what: &str) {
        let el = self.start.elapsed().as_secs_f64();
        let left = self.total.saturating_sub(done);
        let eta = if done > 0 { el / done as f64 * left as f64 } else { 0.0 };
        let wanted = self.mode.unwrap_or(self.shown || el + eta >= 1.0);
        if !wanted {
            return;
        }
        self.shown = true;
        if !self.terminal {
            if el - self.last_line >= 1.0 || left == 0 {
                self.last_line = el;
                eprintln!("[{what}] {done}/{} {}, {eta:.1} s left", self.total, self.unit);
            }
            return;
        }
        let width = 30;
        let fill = (width * done / self.total.max(1)).min(width);
        eprint!(
            "\r{what} [{}{}] {done}/{} {}, {eta:.1} s left ",
            "#".repeat(fill),
            " ".repeat(width - fill),
            self.total,
            self.unit
        );
        let _ = std::io::stderr().flush();
    }
    pub fn finish(&self) {
        if self.shown && self.terminal {
            eprintln!();
        }
    }
}
