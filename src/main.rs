fn main() {
    std::process::exit(maestro::cli::main());
}
