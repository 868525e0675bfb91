//! The named Docker engines (`engines:`) and the `engine:` keys of categories and services.
//!
//! Checked at load, with the line, because a misspelt engine name would otherwise surface
//! only mid-rebuild, on the first service of that engine, after other services were already
//! rebuilt; and an address is checked as strictly as `docker::address` reads it (it ends up
//! on `ssh`'s command line).

use super::model::FleetConfig;
use super::parse::key_line;
use crate::docker::address::{Address, valid_engine_name};

impl FleetConfig {
    /// Every engine address parses, every engine name is a name, every `engine:` is declared.
    pub(super) fn check_engines(&self, text: &str) -> Result<(), (usize, String)> {
        for (name, url) in &self.engines {
            let line = key_line(text, &["engines", name]);
            if !valid_engine_name(name) {
                return Err((
                    line,
                    format!(
                        "engines.{}: not an engine name (letters, digits, '-', '_'; at most 64)",
                        name.escape_default()
                    ),
                ));
            }
            Address::parse(url).map_err(|e| (line, format!("engines.{name}: {e}")))?;
        }
        let declared = || {
            let names: Vec<&str> = self.engines.keys().map(String::as_str).collect();
            if names.is_empty() {
                "none; add an `engines:` section, like engines: {edge: \"ssh://root@edge\"}"
                    .to_string()
            } else {
                names.join(", ")
            }
        };
        let uses = self
            .categories
            .iter()
            .map(|(n, c)| ("categories", n, &c.engine))
            .chain(
                self.services
                    .iter()
                    .map(|(n, s)| ("services", n, &s.engine)),
            );
        for (section, name, engine) in uses {
            if let Some(e) = engine
                && !self.engines.contains_key(e)
            {
                return Err((
                    key_line(text, &[section, name, "engine"]),
                    format!(
                        "{section}.{name}.engine: unknown engine '{}' (declared: {})",
                        e.escape_default(),
                        declared()
                    ),
                ));
            }
        }
        Ok(())
    }
}
