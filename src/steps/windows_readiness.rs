//! Windows: report what goldify cannot do offline and VMmanager's guide asks of a template,
//! read from the image without changing it:
//! - generalized: sysprep /generalize ran (the machine SID and identity are reset at the
//!   clone's first boot). Windows records the image's state in the SOFTWARE hive,
//!   `Microsoft\Windows\CurrentVersion\Setup\State`, `ImageState` (Microsoft's
//!   "Windows Setup installation process": IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE after
//!   `sysprep /generalize /oobe`, IMAGE_STATE_COMPLETE for an installed, specialized
//!   machine). Generalization itself cannot be done offline: goldify never pretends;
//! - virtio: the virtio storage (viostor or vioscsi) and network (netkvm) drivers;
//! - agent: the QEMU guest agent service (QEMU-GA);
//! - rdp: Remote Desktop enabled (`Control\Terminal Server`, fDenyTSConnections = 0).
//!
//! Each check that fails is a warning in the report, or an error for those the recipe
//! lists in `require`.

use super::{Ctx, OptionDoc, Phase, Step, StepInfo};
use crate::guest::Family;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "windows-readiness",
    summary: "report whether the image is generalized (sysprep), has the virtio drivers, the QEMU guest agent and RDP",
    families: &[Family::Windows],
    options: &[OptionDoc {
        name: "require",
        kind: "list of generalized|virtio|agent|rdp",
        default: "[]",
        help: "checks whose failure fails the run (the others are warnings)",
    }],
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Check {
    Generalized,
    Virtio,
    Agent,
    Rdp,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowsReadiness {
    #[serde(default)]
    pub require: Vec<Check>,
}

/// What failed, for each check (`None`: it passed).
fn failures(ctx: &mut Ctx) -> Result<Vec<(Check, Option<String>)>> {
    use super::windows::{control_set, hive, systemroot};
    let software = hive(ctx, "SOFTWARE");
    let system = hive(ctx, "SYSTEM");
    let cs = control_set(ctx);
    let state = ctx
        .registry_get(&software, &["Microsoft", "Windows", "CurrentVersion", "Setup", "State"], "ImageState")?
        .and_then(|v| v.string());
    let generalized = match state.as_deref() {
        Some(s) if s.starts_with("IMAGE_STATE_GENERALIZE_RESEAL") => None,
        Some(s) => Some(format!(
            "the image is not generalized (ImageState {s}): every clone keeps this machine's SID; run `sysprep /generalize /oobe /shutdown` in the VM first (it cannot be done offline)"
        )),
        None => Some("cannot tell whether the image is generalized: no ImageState in the SOFTWARE hive".to_string()),
    };
    let drivers = format!("{}/System32/drivers", systemroot(ctx));
    let mut missing = Vec::new();
    if ctx.lstat(&format!("{drivers}/viostor.sys"))?.is_none() && ctx.lstat(&format!("{drivers}/vioscsi.sys"))?.is_none() {
        missing.push("storage (viostor/vioscsi)");
    }
    if ctx.lstat(&format!("{drivers}/netkvm.sys"))?.is_none() {
        missing.push("network (netkvm)");
    }
    let virtio = (!missing.is_empty()).then(|| format!("virtio drivers missing: {}", missing.join(", ")));
    let agent = ctx
        .registry_get(&system, &[&cs, "Services", "QEMU-GA"], "ImagePath")?
        .is_none()
        .then(|| "the QEMU guest agent (service QEMU-GA) is not installed".to_string());
    let deny = ctx
        .registry_get(&system, &[&cs, "Control", "Terminal Server"], "fDenyTSConnections")?
        .and_then(|v| v.dword_value());
    let rdp = (deny != Some(0)).then(|| "Remote Desktop is disabled (fDenyTSConnections is not 0)".to_string());
    Ok(vec![
        (Check::Generalized, generalized),
        (Check::Virtio, virtio),
        (Check::Agent, agent),
        (Check::Rdp, rdp),
    ])
}

impl Step for WindowsReadiness {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let mut required = Vec::new();
        for (check, failure) in failures(ctx)? {
            match failure {
                Some(why) if self.require.contains(&check) => required.push(why),
                Some(why) => ctx.warn(why),
                None => tracing::info!("windows-readiness: {check:?}: ok"),
            }
        }
        if !required.is_empty() {
            bail!("{}", required.join("; "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::guest::memory::MemoryGuest;
    use crate::guest::registry::{RegEdit, RegValue};
    use crate::guest::{Guest, OsFacts};
    use crate::steps::testing::apply;

    const SOFTWARE: &str = "/Windows/System32/config/SOFTWARE";
    const SYSTEM: &str = "/Windows/System32/config/SYSTEM";

    fn guest(state: &str) -> MemoryGuest {
        let g = MemoryGuest::new(OsFacts::sample("windows"));
        g.file(SOFTWARE, b"regf").file(SYSTEM, b"regf");
        let key = ["Microsoft", "Windows", "CurrentVersion", "Setup", "State"];
        g.registry_set(SOFTWARE, &[RegEdit::new(&key, vec![("ImageState", RegValue::sz(state))])])
            .unwrap();
        g
    }

    #[test]
    fn a_used_image_is_reported_not_generalized_and_what_else_is_missing() {
        let g = guest("IMAGE_STATE_COMPLETE");
        let r = apply(&g, "windows-readiness", "~").unwrap();
        assert_eq!(r.warnings.len(), 4, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("not generalized (ImageState IMAGE_STATE_COMPLETE)"));
        assert!(r.changes.is_empty(), "a check changes nothing");
        let e = apply(&g, "windows-readiness", "{require: [generalized]}").unwrap_err();
        assert!(format!("{e:#}").contains("sysprep"), "{e:#}");
        assert!(apply(&g, "windows-readiness", "{require: [sysprep]}").is_err(), "unknown check");
    }

    #[test]
    fn a_ready_image_passes_every_check() {
        let g = guest("IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE");
        g.file("/Windows/System32/drivers/vioscsi.sys", b"MZ")
            .file("/Windows/System32/drivers/netkvm.sys", b"MZ");
        let cs = "ControlSet001";
        g.registry_set(
            SYSTEM,
            &[
                RegEdit::new(&[cs, "Services", "QEMU-GA"], vec![("ImagePath", RegValue::sz("qemu-ga.exe"))]),
                RegEdit::new(&[cs, "Control", "Terminal Server"], vec![("fDenyTSConnections", RegValue::dword(0))]),
            ],
        )
        .unwrap();
        let r = apply(&g, "windows-readiness", "{require: [generalized, virtio, agent, rdp]}").unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }
}
