//! `dockhand docs`: the API reference, generated from the engine so it cannot drift.

use std::path::PathBuf;

use super::GlobalOpts;
use crate::error::{Error, Result};

pub fn docs(
    opts: &GlobalOpts,
    definitions: Option<PathBuf>,
    output: Option<PathBuf>,
) -> Result<i32> {
    let rt = opts.runtime()?;
    if let Some(dir) = definitions {
        crate::docs::write_definitions(rt.engine(), &dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        eprintln!("wrote Rhai definitions to {}", dir.display());
        return Ok(0);
    }
    let md = crate::docs::markdown(rt.engine())?;
    match output {
        Some(path) => super::write_output(&path, md.as_bytes(), "the API reference")?,
        None => print!("{md}"),
    }
    Ok(0)
}
