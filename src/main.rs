use clap::Parser;

fn main() {
    let cli = match goldify::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A usage error of a command given --json is also one JSON object on stdout.
            if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                println!("{}", goldify::error::json_error(message, goldify::error::Exit::Usage));
            }
            e.exit()
        }
    };
    let json = cli.json();
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
            if json {
                println!("{}", goldify::error::json_error(&format!("{e:#}"), exit));
            }
            exit.code()
        }
    };
    std::process::exit(code);
}
