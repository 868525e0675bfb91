//! The `dockhand` binary: everything lives in the library (`dockhand::cli`).

fn main() {
    dockhand::startup::init();
    let code = dockhand::cli::main();
    dockhand::startup::mark("exit");
    std::process::exit(code);
}
