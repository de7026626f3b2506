//! Unpin network configuration from the old machine's NICs and forget its DHCP leases.
//!
//! A clone has new MAC addresses; a config matched or pinned to the old ones leaves the
//! clone's NIC unconfigured, and udev's persistent-net rules rename it (eth1 instead of
//! eth0). Per format:
//! - ifcfg (RHEL, SUSE): HWADDR=, MACADDR= and UUID= lines go;
//! - NetworkManager keyfiles: mac-address= and uuid= go (NM derives a UUID when absent);
//! - netplan: `match: {macaddress}` and a `macaddress:` setting go; a `set-name` that
//!   needed the MAC match goes too, and an emptied match becomes `name: "e*"`;
//! - ifupdown: `hwaddress` lines go;
//! - systemd-networkd: MACAddress= in [Match] becomes Name=en* eth* (an empty [Match]
//!   would match every link), MACAddress= elsewhere goes; .link files that match a MAC go;
//! - udev 70-persistent-net.rules goes;
//! - leases of dhclient, dhcpcd, NetworkManager, networkd and wicked go.

use super::{Ctx, Phase, Step, StepInfo, NO_OPTIONS};
use anyhow::Result;
use serde::{Deserialize, Serialize};

pub(crate) static INFO: StepInfo = StepInfo {
    name: "nic-configs",
    summary: "remove MAC/UUID pins (ifcfg, NetworkManager, netplan, ifupdown, networkd, udev) and DHCP leases",
    families: &[],
    options: NO_OPTIONS,
    phase: Phase::Main,
    repeatable: false,
};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NicConfigs {}

const LEASES: &[&str] = &[
    "/var/lib/dhcp/*.leases",
    "/var/lib/dhcp/*.lease",
    "/var/lib/dhcp6/*.leases",
    "/var/lib/dhclient/*",
    "/var/lib/dhcpcd/*",
    "/var/lib/dhcpcd5/*",
    "/var/db/dhcpcd/*",
    "/var/lib/NetworkManager/*.lease",
    "/var/lib/NetworkManager/dhclient-*",
    "/var/lib/NetworkManager/internal-*",
    "/var/lib/NetworkManager/timestamps",
    "/var/lib/NetworkManager/seen-bssids",
    "/var/lib/NetworkManager/secret_key",
    "/var/lib/NetworkManager/NetworkManager-intern.conf",
    "/var/lib/systemd/netif/leases/*",
    "/var/lib/wicked/lease-*",
    "/var/lib/wicked/duid.xml",
    "/var/lib/wicked/iaid.xml",
];

const UDEV_RULES: &[&str] =
    &["/etc/udev/rules.d/70-persistent-net.rules", "/etc/udev/rules.d/75-persistent-net-generator.rules"];

/// Drop whole lines whose key (before `=` or whitespace) is one of `keys`.
fn drop_keys(text: &str, keys: &[&str], sep: char) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let key = t.split(|c: char| c == sep || c.is_whitespace()).next().unwrap_or("");
        let key = key.trim_matches('"');
        if keys.iter().any(|k| k.eq_ignore_ascii_case(key)) && !t.starts_with('#') {
            continue;
        }
        out.push_str(line);
    }
    out
}

pub(crate) fn ifcfg(text: &str) -> String {
    drop_keys(text, &["HWADDR", "MACADDR", "UUID"], '=')
}

pub(crate) fn nm_keyfile(text: &str) -> String {
    drop_keys(text, &["mac-address", "uuid", "permanent-mac-address"], '=')
}

pub(crate) fn ifupdown(text: &str) -> String {
    drop_keys(text, &["hwaddress"], ' ')
}

/// systemd-networkd .network: MACAddress= in [Match] → Name=en* eth* (unless the section
/// already has a Name=), MACAddress= in other sections dropped.
pub(crate) fn networkd(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut section = String::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
        }
        let key = t.split('=').next().unwrap_or("").trim();
        if key.eq_ignore_ascii_case("MACAddress") || key.eq_ignore_ascii_case("PermanentMACAddress") {
            if section.eq_ignore_ascii_case("[Match]") {
                let section_has_name = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| !l.trim().starts_with('['))
                    .chain(lines[i + 1..].iter().take_while(|l| !l.trim().starts_with('[')))
                    .any(|l| l.trim().starts_with("Name="));
                if !section_has_name {
                    out.push_str("Name=en* eth*\n");
                }
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

/// netplan: structural edit (comments are not kept in files that change).
pub(crate) fn netplan(text: &str) -> Result<Option<String>> {
    use serde_yaml::Value;
    let mut doc: Value = serde_yaml::from_str(text)?;
    let mut changed = false;
    let Some(network) = doc.get_mut("network") else { return Ok(None) };
    for kind in ["ethernets", "bonds", "bridges", "vlans", "wifis"] {
        let Some(Value::Mapping(ifaces)) = network.get_mut(kind) else { continue };
        for (_, iface) in ifaces.iter_mut() {
            let Value::Mapping(iface) = iface else { continue };
            if iface.remove("macaddress").is_some() {
                changed = true;
            }
            let mut emptied = false;
            if let Some(Value::Mapping(m)) = iface.get_mut("match") {
                if m.remove("macaddress").is_some() {
                    changed = true;
                    emptied = m.is_empty();
                }
            }
            if emptied {
                // set-name needs a match; without the MAC it would rename every NIC alike.
                let mut m = serde_yaml::Mapping::new();
                m.insert("name".into(), "e*".into());
                iface.insert("match".into(), Value::Mapping(m));
                iface.remove("set-name");
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(serde_yaml::to_string(&doc)?))
}

impl NicConfigs {
    fn rewrite(&self, ctx: &mut Ctx, pattern: &str, f: &dyn Fn(&str) -> Result<Option<String>>) -> Result<()> {
        for path in ctx.glob(pattern)? {
            let Some(text) = ctx.read_text(&path)? else { continue };
            match f(&text) {
                Ok(Some(new)) if new != text => ctx.edit(&path, new.as_bytes())?,
                Ok(_) => {}
                Err(e) => ctx.warn(format!("{path}: cannot parse, left alone: {e}")),
            }
        }
        Ok(())
    }
}

impl Step for NicConfigs {
    fn info(&self) -> &'static StepInfo {
        &INFO
    }

    fn apply(&self, ctx: &mut Ctx) -> Result<()> {
        let some = |f: fn(&str) -> String| move |t: &str| -> Result<Option<String>> { Ok(Some(f(t))) };
        self.rewrite(ctx, "/etc/sysconfig/network-scripts/ifcfg-*", &some(ifcfg))?;
        self.rewrite(ctx, "/etc/sysconfig/network/ifcfg-*", &some(ifcfg))?;
        self.rewrite(ctx, "/etc/NetworkManager/system-connections/*", &some(nm_keyfile))?;
        self.rewrite(ctx, "/etc/netplan/*.yaml", &netplan)?;
        self.rewrite(ctx, "/etc/network/interfaces", &some(ifupdown))?;
        self.rewrite(ctx, "/etc/network/interfaces.d/*", &some(ifupdown))?;
        self.rewrite(ctx, "/etc/systemd/network/*.network", &some(networkd))?;
        for link in ctx.glob("/etc/systemd/network/*.link")? {
            let Some(text) = ctx.read_text(&link)? else { continue };
            if text.lines().any(|l| l.trim_start().starts_with("MACAddress=")) {
                ctx.remove(&link)?;
            }
        }
        for rule in UDEV_RULES {
            ctx.remove(rule)?;
        }
        ctx.remove_globs(LEASES)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifcfg_pins_go() {
        let t = "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nUUID=\"5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\"\nBOOTPROTO=dhcp\n# HWADDR= comment stays\n";
        assert_eq!(ifcfg(t), "DEVICE=eth0\nBOOTPROTO=dhcp\n# HWADDR= comment stays\n");
    }

    #[test]
    fn nm_pins_go() {
        let t = "[connection]\nid=eth0\nuuid=2b3c\ntype=ethernet\n[ethernet]\nmac-address=52:54:00:12:34:56\n";
        assert_eq!(nm_keyfile(t), "[connection]\nid=eth0\ntype=ethernet\n[ethernet]\n");
    }

    #[test]
    fn ifupdown_hwaddress_goes() {
        let t = "auto eth0\niface eth0 inet dhcp\n    hwaddress ether 52:54:00:12:34:56\n";
        assert_eq!(ifupdown(t), "auto eth0\niface eth0 inet dhcp\n");
    }

    #[test]
    fn networkd_match_becomes_name() {
        let t = "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nDHCP=yes\n";
        assert_eq!(networkd(t), "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n");
        let t = "[Match]\nName=eth0\nMACAddress=52:54:00:12:34:56\n[Link]\nMACAddress=aa:bb:cc:dd:ee:ff\n";
        assert_eq!(networkd(t), "[Match]\nName=eth0\n[Link]\n");
    }

    #[test]
    fn netplan_mac_match() {
        let t = "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      match:\n        macaddress: 52:54:00:12:34:56\n      set-name: eth0\n";
        let out = netplan(t).unwrap().unwrap();
        assert!(!out.contains("macaddress"), "{out}");
        assert!(!out.contains("set-name"), "{out}");
        assert!(out.contains("name: e*"), "{out}");
        assert!(netplan("network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n").unwrap().is_none());
    }

    mod in_guest {
        use crate::guest::memory::MemoryGuest;
        use crate::guest::{Guest, OsFacts};
        use crate::steps::testing::{apply, dry_run_matches, text};

        const NM: &str = "/etc/NetworkManager/system-connections/eth0.nmconnection";

        /// One guest with every kind of pin (a real one has only some of them).
        fn guest() -> MemoryGuest {
            let g = MemoryGuest::new(OsFacts::sample("debian"));
            g.file("/etc/network/interfaces", b"auto ens3\niface ens3 inet dhcp\n    hwaddress ether 52:54:00:12:34:56\n")
                .file("/etc/sysconfig/network-scripts/ifcfg-eth0", b"DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nONBOOT=yes\n")
                .file(NM, b"[connection]\nid=eth0\nuuid=2b3c\n[ethernet]\nmac-address=52:54:00:12:34:56\n")
                .file("/etc/netplan/00-installer-config.yaml", b"network:\n  ethernets:\n    enp1s0:\n      match: {macaddress: '52:54:00:12:34:56'}\n      set-name: enp1s0\n      dhcp4: true\n")
                .file("/etc/netplan/99-broken.yaml", b"network: [unclosed\n")
                .file("/etc/systemd/network/10-eth.link", b"[Match]\nMACAddress=52:54:00:12:34:56\n[Link]\nName=eth0\n")
                .file("/etc/systemd/network/20-virtio.link", b"[Match]\nDriver=virtio_net\n[Link]\nNamePolicy=path\n")
                .file("/etc/systemd/network/20-wired.network", b"[Match]\nMACAddress=52:54:00:12:34:56\n[Network]\nDHCP=ipv4\n")
                .file("/etc/udev/rules.d/70-persistent-net.rules", b"SUBSYSTEM==\"net\"\n")
                .file("/etc/udev/rules.d/60-keep.rules", b"keep")
                .file("/var/lib/dhcp/dhclient.ens3.leases", b"lease {}")
                .file("/var/lib/NetworkManager/secret_key", b"k")
                .file("/var/lib/NetworkManager/internal-abc-eth0.lease", b"l")
                .file("/var/lib/NetworkManager/NetworkManager.state", b"keep")
                .file("/var/lib/systemd/netif/leases/2", b"l")
                .file("/etc/shadow", b"root:*:::\n")
                .link("/etc/NetworkManager/system-connections/evil.nmconnection", "/etc/shadow");
            g.chmod(0o600, NM).unwrap();
            g
        }

        #[test]
        fn pins_and_leases_go_the_rest_stays() {
            let g = guest();
            let report = apply(&g, "nic-configs", "~").unwrap();
            assert_eq!(text(&g, "/etc/network/interfaces"), "auto ens3\niface ens3 inet dhcp\n");
            assert_eq!(
                text(&g, "/etc/sysconfig/network-scripts/ifcfg-eth0"),
                "DEVICE=eth0\nONBOOT=yes\n"
            );
            assert_eq!(text(&g, NM), "[connection]\nid=eth0\n[ethernet]\n");
            assert_eq!(
                g.lstat(NM).unwrap().unwrap().mode,
                0o600,
                "NetworkManager wants its keyfiles 0600"
            );
            let np: serde_yaml::Value =
                serde_yaml::from_str(&text(&g, "/etc/netplan/00-installer-config.yaml")).unwrap();
            let enp = &np["network"]["ethernets"]["enp1s0"];
            assert_eq!(enp["match"]["name"], "e*");
            assert!(enp.get("set-name").is_none() && enp["dhcp4"] == true);
            assert!(!g.exists("/etc/systemd/network/10-eth.link"));
            assert!(g.exists("/etc/systemd/network/20-virtio.link"));
            assert_eq!(
                text(&g, "/etc/systemd/network/20-wired.network"),
                "[Match]\nName=en* eth*\n[Network]\nDHCP=ipv4\n"
            );
            assert!(
                !g.exists("/etc/udev/rules.d/70-persistent-net.rules") && g.exists("/etc/udev/rules.d/60-keep.rules")
            );
            assert!(g.list("/var/lib/dhcp").unwrap().is_empty());
            assert_eq!(g.list("/var/lib/NetworkManager").unwrap(), ["NetworkManager.state"]);
            assert!(g.list("/var/lib/systemd/netif/leases").unwrap().is_empty());
            // What cannot be parsed, or is a link, is left alone with a warning.
            assert_eq!(text(&g, "/etc/netplan/99-broken.yaml"), "network: [unclosed\n");
            assert_eq!(text(&g, "/etc/shadow"), "root:*:::\n");
            assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        }

        #[test]
        fn dry_run_reports_and_writes_nothing() {
            dry_run_matches(guest, "nic-configs", "~");
        }
    }
}
