//! The `dcms-bulk` binary: parse flags, run, exit with the code the library
//! decided. No logic lives here.

fn main() {
    std::process::exit(dcms_bulk::cli::main());
}
