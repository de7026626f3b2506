//! User step: regex replace in a text file (Rust regex syntax, `$1` for groups).

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "edit",
    summary: "regex replace in a file",
    families: &[],
    options: &[
        OptionDoc { name: "path", kind: "string", default: "(required)", help: "absolute guest path of a regular file" },
        OptionDoc { name: "regex", kind: "string", default: "(required)", help: "Rust regex; (?m) for ^/$ per line" },
        OptionDoc { name: "replace", kind: "string", default: "(required)", help: "replacement; $1 refers to a group" },
        OptionDoc { name: "required", kind: "bool", default: "true", help: "fail when the file is missing or nothing matches" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    #[serde(deserialize_with = "super::validate::file_path")]
    pub path: String,
    #[serde(deserialize_with = "super::validate::regex")]
    pub regex: String,
    pub replace: String,
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

impl Default for Edit {
    fn default() -> Self {
        Edit { path: String::new(), regex: String::new(), replace: String::new(), required: true }
    }
}

impl Step for Edit {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        crate::guest::components(&self.path)?;
        let re = regex::Regex::new(&self.regex).map_err(|e| anyhow!("bad regex {:?}: {e}", self.regex))?;
        let Some(text) = ctx.read_text(&self.path)? else {
            if self.required {
                bail!("{} does not exist", self.path);
            }
            return Ok(());
        };
        if !re.is_match(&text) {
            if self.required {
                bail!("{:?} does not match anything in {}", self.regex, self.path);
            }
            return Ok(());
        }
        let new = re.replace_all(&text, self.replace.as_str());
        if new != text {
            ctx.edit(&self.path, new.as_bytes())?;
        }
        Ok(())
    }
}
