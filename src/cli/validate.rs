//! `dockhand validate [FILES or DIRS] [-- SCRIPT OPTIONS]`: run validation scripts, print one
//! table of every check, optionally JUnit XML and JSON. The work is in [`crate::validate`].

use std::path::PathBuf;

use super::GlobalOpts;
use crate::error::{Error, Result};
use crate::validate::{self, Options};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without FILES: every .rhai under validations/ (team-authored, run --read-only) plus the
shipped playbooks/validate-services.rhai (name it alone as shipped:validate-services).

Script options reach every script that declares them:
  dockhand validate --param window=10s --param config=services.yaml
  dockhand validate -- --window 10s --baseline perf.json --save-baseline

Exit codes: 0 every check passed, 1 a check failed, 2 a script did not finish (compile or
runtime error, shown with file:line:col) or bad usage.")]
pub struct ValidateArgs {
    /// Validation files or directories (.rhai), or shipped:NAME.
    #[arg(value_name = "FILES or DIRS")]
    pub files: Vec<PathBuf>,
    /// A script option, KEY=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = validate::parse_param)]
    pub params: Vec<(String, String)>,
    /// Write JUnit XML here (one testsuite per script, one testcase per check).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Let team-authored validations use mutating primitives (they run --read-only by default).
    #[arg(long)]
    pub allow_writes: bool,
    /// Script options after `--`: --name value, --name=value, --flag.
    #[arg(last = true, value_name = "SCRIPT OPTIONS", allow_hyphen_values = true)]
    pub script_args: Vec<String>,
}

pub fn validate(global: &GlobalOpts, args: ValidateArgs) -> Result<i32> {
    if global.dry_run {
        return Err(Error::Usage(
            "validate does not take --dry-run: validations only read (team ones run --read-only)"
                .into(),
        ));
    }
    let mut params = args.params;
    params.extend(validate::parse_passthrough(&args.script_args)?);
    let opts = Options {
        root: global.root.clone().unwrap_or_else(|| ".".into()),
        files: args.files,
        params,
        allow_writes: args.allow_writes,
        allow_exec: global.allow_exec,
        timeout: global.timeout,
        stdlib: global.stdlib.clone(),
        max_operations: global.max_operations,
        max_memory: global.max_memory,
    };
    let report = validate::run(&opts)?;
    if let Some(path) = &args.junit {
        super::write_output(path, report.junit().as_bytes(), "the JUnit report")?;
    }
    for s in &report.scripts {
        if let Some(e) = &s.error {
            eprint!("{e}");
            if !e.ends_with('\n') {
                eprintln!();
            }
        }
    }
    if global.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.table());
    }
    Ok(report.exit_code())
}
