//! Leaf helpers every layer may use: poison-tolerant locks, durations and sizes for humans,
//! plain-text tables, the YAML nesting guard, the host's free memory.
//!
//! Nothing here names another module of the crate, so any module can depend on it without
//! making a cycle; the test below keeps it that way.

pub mod human;
pub mod lock;
pub mod meminfo;
pub mod table;
pub mod yaml;

pub use lock::lock;

/// The innermost cause of an error ("Connection refused (os error 111)"), which says more
/// than an HTTP client's outer "error sending request".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    /// The sources of this module, as compiled.
    const SOURCES: [(&str, &str); 6] = [
        ("mod.rs", include_str!("mod.rs")),
        ("human.rs", include_str!("human.rs")),
        ("lock.rs", include_str!("lock.rs")),
        ("meminfo.rs", include_str!("meminfo.rs")),
        ("table.rs", include_str!("table.rs")),
        ("yaml.rs", include_str!("yaml.rs")),
    ];

    #[test]
    fn util_depends_on_no_other_module_of_the_crate() {
        // Spelt in pieces so this test does not find itself.
        let (up, across) = (concat!("super", "::", "super"), concat!("crate", "::"));
        for (file, text) in SOURCES {
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                assert!(
                    !code.contains(across) && !code.contains(up),
                    "src/util/{file}:{}: util must stay a leaf: {line}",
                    n + 1
                );
            }
        }
    }
}
