#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    super::Cli::command().debug_assert();
}

/// Every argument of every command says what it is in `--help`.
#[test]
fn every_argument_has_help() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.get_help().is_none() && !["help", "version"].contains(&id) {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&super::Cli::command(), "goldify", &mut missing);
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
}
