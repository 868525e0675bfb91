//! The `dockhand` binary: everything lives in the library (`dockhand::cli`).

fn main() {
    std::process::exit(dockhand::cli::main());
}
