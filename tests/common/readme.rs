//! README commands: every command line of README.md's ```sh blocks, as shell words, so
//! tests run exactly what the README tells a user to type (tests/readme.rs says which
//! test runs which).

use super::{goldify, repo};
use std::path::Path;
use std::process::Command;

/// One command of a ```sh block of README.md.
#[derive(Debug, Clone)]
pub struct ReadmeCommand {
    /// The line of README.md where it starts (1-based).
    pub line: usize,
    /// Its words joined by single spaces: what `readme_command` prefixes match.
    pub text: String,
    /// Its shell words, quotes removed: `NAME=value` assignments first, then the program
    /// and its arguments; a redirection is the word `>` and its file. `~` is kept.
    pub words: Vec<String>,
    /// The text after ` #`, trimmed ("" when there is none).
    pub comment: String,
}

impl ReadmeCommand {
    /// The exit code the comment promises (`# exit 3: …`), else 0.
    pub fn expected_exit(&self) -> i32 {
        let Some(rest) = self.comment.strip_prefix("exit ") else {
            return 0;
        };
        let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
        code.parse()
            .unwrap_or_else(|_| panic!("README line {}: `# exit` without a code", self.line))
    }

    /// The `NAME=value` words it starts with.
    pub fn env(&self) -> Vec<(String, String)> {
        self.words[..self.program_at()]
            .iter()
            .map(|w| {
                let (k, v) = w.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// The program and its arguments (redirection included), after the assignments.
    pub fn argv(&self) -> &[String] {
        &self.words[self.program_at()..]
    }

    pub fn program(&self) -> &str {
        &self.argv()[0]
    }

    /// Whether this command is `prefix` or starts with it followed by more words.
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.text
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    }

    fn program_at(&self) -> usize {
        self.words.iter().take_while(|w| is_assignment(w)).count()
    }
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Every command of README.md's ```sh blocks, in order.
pub fn readme_commands() -> Vec<ReadmeCommand> {
    let path = repo().join("README.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_readme(&text)
}

/// The commands of the ```sh blocks of a Markdown text. A line ending in `\` continues on
/// the next; lines that are only a comment are skipped. Only the shell the tests can run
/// without a shell is accepted (words, quotes, `NAME=value` first, `> FILE`): anything
/// else (pipes, `$`, globs, `$ ` prompts) fails, naming the line, and so do shell blocks
/// spelt another way (```bash, ```console), whose commands no test would see.
pub fn parse_readme(markdown: &str) -> Vec<ReadmeCommand> {
    let mut commands = Vec::new();
    let mut in_sh = None::<bool>;
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        let number = n + 1;
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            if in_sh.take().is_none() {
                let lang = lang.trim();
                assert!(
                    !["bash", "shell", "console", "sh-session", "zsh", "shell-session"].contains(&lang),
                    "README line {number}: a ```{lang} block: commands go in ```sh blocks, where tests find them"
                );
                in_sh = Some(lang == "sh");
            }
            assert!(
                pending.is_none(),
                "README line {number}: the block ends inside a continued command"
            );
            continue;
        }
        if in_sh != Some(true) {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
        let text = if joined.is_empty() {
            line.trim()
        } else {
            line.trim_start()
        };
        if let Some(continued) = text.strip_suffix('\\') {
            joined.push_str(continued);
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(text);
        if joined.trim().is_empty() || joined.trim_start().starts_with('#') {
            continue;
        }
        assert!(
            !joined.starts_with("$ "),
            "README line {start}: `{joined}`: commands are written without a `$` prompt"
        );
        let (words, comment) = shell_words(&joined).unwrap_or_else(|e| panic!("README line {start}: `{joined}`: {e}"));
        commands.push(ReadmeCommand {
            line: start,
            text: words.join(" "),
            words,
            comment,
        });
    }
    commands
}

/// Split one command line into words as sh would, without expanding anything: single
/// and double quotes, backslashes, a `#` comment at the start of a word, `>` as a word
/// of its own. Returns the words and the comment.
pub fn shell_words(line: &str) -> Result<(Vec<String>, String), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = line.char_indices().peekable();
    let end = |words: &mut Vec<String>, word: &mut String, started: &mut bool| {
        if *started {
            words.push(std::mem::take(word));
            *started = false;
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => end(&mut words, &mut word, &mut started),
            '#' if !started => return Ok((words, line[i + 1..].trim().to_string())),
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\' | '$' | '`'))) => word.push(c),
                            Some((_, c)) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some((_, c @ ('$' | '`'))) => return Err(format!("`{c}` expands inside \"…\"")),
                        Some((_, c)) => word.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                started = true;
                match chars.next() {
                    Some((_, c)) => word.push(c),
                    None => return Err("a trailing \\".into()),
                }
            }
            '>' => {
                if started || matches!(chars.peek(), Some((_, '>' | '&' | '|'))) {
                    return Err("only `> FILE` redirects stdout here".into());
                }
                words.push(">".into());
            }
            '|' | ';' | '&' | '<' | '$' | '`' | '(' | ')' | '{' | '}' | '*' | '?' | '[' => {
                return Err(format!(
                    "unquoted `{c}`: pipes, lists, expansions and globs are not run by the tests"
                ));
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    end(&mut words, &mut word, &mut started);
    if words.is_empty() {
        return Err("no command".into());
    }
    if let Some(at) = words.iter().position(|w| w == ">") {
        if at + 2 != words.len() {
            return Err("`> FILE` must end the command".into());
        }
    }
    Ok((words, String::new()))
}

/// The words of the one README command that is `prefix` or starts with it (panics when
/// none or several are): a test that runs a README command takes it from here, so the
/// README cannot drift from what is tested.
pub fn readme_command(prefix: &str) -> Vec<String> {
    let all = readme_commands();
    let found: Vec<&ReadmeCommand> = all.iter().filter(|c| c.starts_with(prefix)).collect();
    match found[..] {
        [one] => one.words.clone(),
        [] => panic!("README.md has no command starting with `{prefix}`"),
        _ => panic!(
            "README.md has {} commands starting with `{prefix}`: {:?}",
            found.len(),
            found.iter().map(|c| format!("line {}", c.line)).collect::<Vec<_>>()
        ),
    }
}

/// A README command's words with its file arguments replaced by a test's: each `(word,
/// replacement)` replaces that whole word, which must be there (so a README edit that
/// renames a file fails here instead of testing something else).
pub fn substitute(words: &[String], map: &[(&str, &dyn AsRef<std::ffi::OsStr>)]) -> Vec<std::ffi::OsString> {
    for (from, _) in map {
        assert!(
            words.iter().any(|w| w == from),
            "the README command `{}` has no word `{from}`",
            words.join(" ")
        );
    }
    words
        .iter()
        .map(|w| match map.iter().find(|(from, _)| from == w) {
            Some((_, to)) => to.as_ref().to_os_string(),
            None => w.into(),
        })
        .collect()
}

/// A command from shell words: `NAME=value` words first set the environment, `goldify`
/// is the binary under test, a relative program path (`scripts/install.sh`) is the
/// checkout's. Redirections are the caller's.
pub fn command_from_words(words: &[std::ffi::OsString]) -> Command {
    let assignments = words
        .iter()
        .take_while(|w| w.to_str().is_some_and(is_assignment))
        .count();
    let (env, argv) = words.split_at(assignments);
    let program = argv.first().expect("a command needs a program");
    assert!(argv.iter().all(|w| w != ">"), "{argv:?}: redirections are the caller's");
    let mut c = if program == "goldify" {
        goldify()
    } else if Path::new(program).is_relative() && Path::new(program).components().count() > 1 {
        Command::new(repo().join(program))
    } else {
        Command::new(program)
    };
    for kv in env {
        let (k, v) = kv.to_str().unwrap().split_once('=').unwrap();
        c.env(k, v);
    }
    c.args(&argv[1..]);
    c
}
