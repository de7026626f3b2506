use clap::Parser;

fn main() {
    let cli = goldify::cli::Cli::parse();
    goldify::workdir::private_by_default();
    goldify::init_logging(cli.verbose);
    if let Err(e) = goldify::interrupt::install() {
        eprintln!("goldify: warning: cannot install signal handlers: {e:#}");
    }
    let code = match cli.run() {
        Ok(exit) => exit.code(),
        Err(e) => {
            let exit = goldify::error::exit_of(&e);
            eprintln!("goldify: error: {e:#}");
            exit.code()
        }
    };
    std::process::exit(code);
}
