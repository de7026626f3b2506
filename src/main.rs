use clap::Parser;

fn main() {
    let cli = goldify::cli::Cli::parse();
    goldify::init_logging(cli.verbose);
    if let Err(e) = goldify::interrupt::install() {
        eprintln!("goldify: warning: cannot install signal handlers: {e:#}");
    }
    let code = match cli.run() {
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
