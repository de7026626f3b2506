//! User step: run a shell command inside the guest. It runs in the libguestfs appliance,
//! chrooted into the guest's filesystem — never on the host — with no network and no
//! running services (offline: no systemctl start, no daemons).

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::report::{Action, Change};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub static INFO: StepInfo = StepInfo {
    name: "run",
    summary: "run a shell command inside the guest (in the appliance, never on the host)",
    families: &[],
    options: &[OptionDoc { name: "command", kind: "string", default: "(required)", help: "given to the guest's /bin/sh -c" }],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    #[serde(deserialize_with = "super::validate::not_blank")]
    pub command: String,
}

impl Step for Run {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if self.command.trim().is_empty() {
            bail!("`command` is empty");
        }
        if !ctx.dry_run {
            let out = ctx.guest.run(&self.command)?;
            for line in out.lines().take(20) {
                tracing::info!("run: {line}");
            }
        }
        ctx.report.changes.push(Change { path: self.command.clone(), action: Action::Ran, freed: 0 });
        Ok(())
    }
}
