use clap::Parser;

fn main() {
    let cli = goldify::cli::Cli::parse();
    goldify::init_logging(cli.verbose);
    if let Err(e) = goldify::interrupt::install() {
        eprintln!("goldify: warning: cannot install signal handlers: {e:#}");
    }
    let result = cli.run();
    // From here on a late signal no longer ends the process on its own (one error line).
    let _exiting = goldify::interrupt::exiting();
    let code = match result {
        Ok(exit) => exit.code(),
        Err(e) => {
            let exit = goldify::error::exit_of(&e);
            eprintln!("goldify: error: {e:#}");
            exit.code()
        }
    };
    std::process::exit(code);
}
