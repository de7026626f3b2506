//! User step: a script that runs once, at the first boot of each clone.
//!
//! Scripts go to /usr/lib/goldify/firstboot/NN-name; a oneshot unit (systemd) or an
//! OpenRC local.d script runs them in order after the network is up, removes each one
//! that succeeded and logs to /var/log/goldify-firstboot.log. A failed script stays and is
//! retried at the next boot.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::guest::facts::Init;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "firstboot",
    summary: "run a script once at the first boot of each clone",
    families: &[],
    options: &[
        OptionDoc { name: "script", kind: "string", default: "(required)", help: "the script; a #! line picks its interpreter" },
        OptionDoc { name: "name", kind: "string", default: "script", help: "a name for logs and the file" },
    ],
    phase: Phase::Main,
    repeatable: true,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Firstboot {
    #[serde(deserialize_with = "super::validate::not_blank")]
    pub script: String,
    #[serde(default, deserialize_with = "super::validate::plain_name")]
    pub name: Option<String>,
}

pub(crate) const DIR: &str = "/usr/lib/goldify/firstboot";
const RUNNER: &str = "/usr/lib/goldify/firstboot.sh";
const UNIT: &str = "goldify-firstboot.service";

const RUNNER_SH: &str = r#"#!/bin/sh
# Installed by goldify: runs each first-boot script once, in order.
dir=/usr/lib/goldify/firstboot
log=/var/log/goldify-firstboot.log
for s in "$dir"/*; do
    [ -f "$s" ] || continue
    echo "goldify-firstboot: running $s" >>"$log"
    chmod +x "$s"
    if "$s" >>"$log" 2>&1; then
        rm -f "$s"
    else
        echo "goldify-firstboot: $s failed ($?)" >>"$log"
    fi
done
"#;

const UNIT_FILE: &str = "\
[Unit]
Description=goldify first-boot scripts
Wants=network-online.target
After=network-online.target
ConditionDirectoryNotEmpty=/usr/lib/goldify/firstboot

[Service]
Type=oneshot
ExecStart=/usr/lib/goldify/firstboot.sh
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
";

impl Step for Firstboot {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        if self.script.trim().is_empty() {
            bail!("`script` is empty");
        }
        let name = self.name.clone().unwrap_or_else(|| "script".into());
        if !super::validate::is_plain_name(&name) {
            bail!("firstboot name {name:?}: use letters, digits, . _ - only");
        }
        ctx.mkdir_p(DIR)?;
        let n = ctx.guest.list(DIR).map(|l| l.len()).unwrap_or(0);
        let path = format!("{DIR}/{n:02}-{name}");
        let script = if self.script.starts_with("#!") { self.script.clone() } else { format!("#!/bin/sh\n{}", self.script) };
        ctx.write(&path, script.as_bytes())?;
        ctx.chmod(0o755, &path)?;
        ctx.write(RUNNER, RUNNER_SH.as_bytes())?;
        ctx.chmod(0o755, RUNNER)?;
        match ctx.facts().init {
            Init::Systemd => {
                ctx.mkdir_p("/etc/systemd/system")?;
                ctx.write(&format!("/etc/systemd/system/{UNIT}"), UNIT_FILE.as_bytes())?;
                ctx.enable_unit(UNIT, "multi-user.target")?;
            }
            Init::Openrc => {
                ctx.mkdir_p("/etc/local.d")?;
                ctx.write("/etc/local.d/goldify-firstboot.start", format!("#!/bin/sh\nexec {RUNNER}\n").as_bytes())?;
                ctx.chmod(0o755, "/etc/local.d/goldify-firstboot.start")?;
                ctx.mkdir_p("/etc/runlevels/default")?;
                if ctx.lstat("/etc/runlevels/default/local")?.is_none() {
                    ctx.symlink("/etc/init.d/local", "/etc/runlevels/default/local")?;
                }
            }
            other => bail!("firstboot needs systemd or OpenRC in the guest (found {other:?})"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{DIR, RUNNER, RUNNER_SH, UNIT_FILE};
    use crate::guest::facts::Init;
    use crate::guest::memory::MemoryGuest;
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::{apply, dry_run_matches, text, tree};

    /// The step tests/user_steps.rs runs in a real image.
    const HELLO: &str = "{name: hello, script: 'echo first boot > /var/tmp/fb'}";

    fn guest(init: Init) -> MemoryGuest {
        let mut facts = OsFacts::sample("debian");
        facts.init = init;
        let g = MemoryGuest::new(facts);
        g.file("/etc/hostname", b"keep\n").dir("/etc/systemd/system");
        g
    }

    fn mode(g: &MemoryGuest, path: &str) -> u32 {
        g.lstat(path).unwrap().unwrap_or_else(|| panic!("{path} missing")).mode
    }

    #[test]
    fn systemd_gets_scripts_in_order_a_runner_and_an_enabled_unit() {
        let g = guest(Init::Systemd);
        apply(&g, "firstboot", HELLO).unwrap();
        apply(&g, "firstboot", "{script: \"#!/bin/bash\\necho two\\n\"}").unwrap();
        assert_eq!(g.list(DIR).unwrap(), ["00-hello", "01-script"]);
        assert_eq!(
            text(&g, &format!("{DIR}/00-hello")),
            "#!/bin/sh\necho first boot > /var/tmp/fb"
        );
        assert_eq!(
            text(&g, &format!("{DIR}/01-script")),
            "#!/bin/bash\necho two\n",
            "a #! line is kept"
        );
        assert_eq!(mode(&g, &format!("{DIR}/00-hello")), 0o755);
        assert_eq!((text(&g, RUNNER), mode(&g, RUNNER)), (RUNNER_SH.to_string(), 0o755));
        assert_eq!(text(&g, "/etc/systemd/system/goldify-firstboot.service"), UNIT_FILE);
        assert_eq!(
            g.readlink("/etc/systemd/system/multi-user.target.wants/goldify-firstboot.service")
                .unwrap(),
            "/etc/systemd/system/goldify-firstboot.service"
        );
        assert_eq!(text(&g, "/etc/hostname"), "keep\n");
    }

    #[test]
    fn openrc_gets_a_local_d_script() {
        let g = guest(Init::Openrc);
        apply(&g, "firstboot", HELLO).unwrap();
        let start = "/etc/local.d/goldify-firstboot.start";
        assert_eq!(text(&g, start), format!("#!/bin/sh\nexec {RUNNER}\n"));
        assert_eq!(mode(&g, start), 0o755);
        assert_eq!(g.readlink("/etc/runlevels/default/local").unwrap(), "/etc/init.d/local");
        assert!(!g.exists("/etc/systemd/system/goldify-firstboot.service"));
    }

    #[test]
    fn refusals() {
        let g = guest(Init::Systemd);
        let before = tree(&g);
        for options in [
            "{script: ''}",
            "{script: '  '}",
            "{name: ../../etc/cron.d/x, script: 'true'}",
            "{name: .hidden, script: 'true'}",
            "{name: '', script: 'true'}",
            "{name: 'two words', script: 'true'}",
        ] {
            assert!(apply(&g, "firstboot", options).is_err(), "{options}");
        }
        assert_eq!(tree(&g), before);
        let err = apply(&guest(Init::Sysv), "firstboot", HELLO).unwrap_err();
        assert!(err.to_string().contains("needs systemd or OpenRC"), "{err:#}");
    }

    #[test]
    fn dry_run_reports_and_writes_nothing() {
        dry_run_matches(|| guest(Init::Systemd), "firstboot", HELLO);
        dry_run_matches(|| guest(Init::Openrc), "firstboot", HELLO);
    }
}
