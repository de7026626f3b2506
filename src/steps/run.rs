//! User step: run a shell command inside the guest. It runs in the libguestfs appliance,
//! chrooted into the guest's filesystem — never on the host — with no network and no
//! running services (offline: no systemctl start, no daemons).

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::report::{Action, Change};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "run",
    summary: "run a shell command inside the guest (in the appliance, never on the host)",
    families: &[],
    options: &[OptionDoc { name: "command", kind: "string", default: "(required)", help: "given to the guest's /bin/sh -c" }],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Run {
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

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::OsFacts;
    use crate::report::Action;
    use crate::steps::testing::{apply, changes, dry_run, tree};

    const COMMAND: &str = "echo ran-by-goldify > /root/run-marker";

    #[test]
    fn the_command_goes_to_the_guest_never_to_the_host() {
        // The in-memory guest cannot run anything and says so: the step handed the
        // command to `Guest::run` (the appliance, chrooted into the guest), nowhere else.
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        let err = apply(&g, "run", &format!("{{command: '{COMMAND}'}}")).unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("cannot run commands ({COMMAND})")),
            "{err:#}"
        );
    }

    #[test]
    fn dry_run_reports_the_command_and_runs_nothing() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        g.file("/etc/hostname", b"keep\n");
        let before = tree(&g);
        let report = dry_run(&g, "run", &format!("{{command: '{COMMAND}'}}")).unwrap();
        assert_eq!(changes(&report), [(Action::Ran, COMMAND)]);
        assert_eq!(tree(&g), before);
    }

    #[test]
    fn an_empty_command_is_refused() {
        let g = MemoryGuest::new(OsFacts::sample("debian"));
        for options in ["{command: ''}", "{command: '  '}"] {
            let err = dry_run(&g, "run", options).unwrap_err();
            assert!(format!("{err:#}").contains("empty"), "refused when the step is built: {err:#}");
        }
    }
}
