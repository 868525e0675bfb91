//! `dockhand check FILES...`: compile without running, so a broken playbook is caught in CI
//! or in an editor hook rather than halfway through a rebuild.

use super::GlobalOpts;
use crate::error::{Error, Result};

pub fn check(opts: &GlobalOpts, files: &[std::path::PathBuf]) -> Result<i32> {
    let rt = opts.runtime()?;
    let mut failed = 0;
    let mut report = Vec::new();
    for f in files {
        match rt.check_file(f) {
            Ok(script) => {
                if !opts.json {
                    println!("ok: {} ({} parameter(s))", f.display(), script.params.len());
                }
                report.push(
                    serde_json::json!({ "file": f, "ok": true, "params": script.params.len() }),
                );
            }
            Err(e) => {
                failed += 1;
                match &e {
                    Error::Script(_) | Error::Scripts(_) => eprint!("{e}"),
                    other => eprintln!("error: {other}"),
                }
                report.push(serde_json::json!({ "file": f, "ok": false, "error": e.to_string() }));
            }
        }
    }
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if failed > 0 {
        eprintln!("{failed} of {} file(s) failed to check", files.len());
    }
    Ok(if failed > 0 { 2 } else { 0 })
}
