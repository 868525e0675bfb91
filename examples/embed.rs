//! Embedding dockhand in another Rust program.
//!
//! The CLI is one user of the library; a deploy bot or an internal tool can be another. This
//! example builds a runtime rooted in a temporary directory, runs a playbook given as text
//! with a parameter set from Rust, and reads the checks it recorded.
//!
//! ```text
//! cargo run --example embed
//! ```

use dockhand::rhai::{Dynamic, Map};

fn main() {
    if let Err(e) = run() {
        // Script errors render with file:line:col, the source line and a caret.
        eprint!("{e}");
        std::process::exit(e.exit_code());
    }
}

fn run() -> Result<(), dockhand::Error> {
    let workspace = std::env::temp_dir().join(format!("dockhand-embed-{}", std::process::id()));
    std::fs::create_dir_all(&workspace).map_err(|source| dockhand::Error::Io {
        path: workspace.clone(),
        source,
    })?;
    let rt = dockhand::Runtime::builder().root(&workspace).build()?;

    let script = rt.compile_str(
        "inline-playbook",
        r#"
        let p = params(#{ services: #{ type: "int", default_value: 2, help: "How many" } });
        let items = [];
        for i in 0..p.services { items.push(i); }
        let results = parallel(items, 4, |i| #{ name: `svc-${i}`, healthy: i != 3 });
        for r in results { check(`${r.name} healthy`, r.healthy); }
        fs::write("report.txt", `${results.len()} services checked`);
        results.len()
        "#,
    )?;
    println!(
        "declared parameters: {:?}",
        script.params.iter().map(|p| &p.name).collect::<Vec<_>>()
    );

    let mut values = Map::new();
    values.insert("services".into(), Dynamic::from(5_i64));
    let outcome = rt.run(&script, values)?;

    println!("script returned {}", outcome.value);
    for c in &outcome.checks {
        println!("{:<16} {}", c.name, if c.ok { "pass" } else { "FAIL" });
    }
    println!("exit code would be {}", outcome.exit_code());
    let _ = std::fs::remove_dir_all(&workspace);
    Ok(())
}
