use clap::Parser;

fn main() {
    let cli = goldify::cli::Cli::parse();
    goldify::workdir::private_by_default();
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
            // Whatever failed after a signal failed because of it.
            let exit = if goldify::interrupt::interrupted() {
                goldify::error::Exit::Interrupted
            } else {
                goldify::error::exit_of(&e)
            };
            eprintln!("goldify: error: {e:#}");
            exit.code()
        }
    };
    std::process::exit(code);
}
