//! The `dcms-bulk` binary: parse flags, run, exit with the code the library
//! decided. No logic lives here.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(dcms_bulk::cli::main());
}
