//! The `dockhand` binary: everything lives in the library (`dockhand::cli`).

/// Counts live heap bytes for the memory budget of a run (`--max-memory`).
#[global_allocator]
static ALLOC: dockhand::memory::CountingAlloc = dockhand::memory::CountingAlloc;

fn main() {
    dockhand::startup::init();
    dockhand::memory::limit_arenas();
    let code = dockhand::cli::main();
    dockhand::startup::mark("exit");
    std::process::exit(code);
}
