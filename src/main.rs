//! The `slope` binary: a thin shell around [`slope::cli::main`].

fn main() -> std::process::ExitCode {
    slope::cli::main()
}
