//! The `dockhand` binary: everything lives in the library (`dockhand::cli`).

/// Counts live heap bytes for the memory budget of a run (`--max-memory`).
#[global_allocator]
static ALLOC: dockhand::memory::CountingAlloc = dockhand::memory::CountingAlloc;

fn main() {
    std::process::exit(dockhand::cli::main());
}
