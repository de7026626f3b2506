//! Registry hives through hivex in the appliance (libguestfs `hivex_*`), one hive open at
//! a time, as virt-v2v and virt-customize edit them (libguestfs-common mltools/registry.ml).
//! Key names match case-insensitively, as Windows' own do (hivex_node_get_child).

use super::links::Fill;
use super::GuestfsGuest;
use crate::guest::api::Api;
use crate::guest::registry::{RegEdit, RegValue};
use crate::guest::{Guest, Kind};
use anyhow::{bail, Context, Result};

impl GuestfsGuest {
    fn open_hive(&self, hive: &str, write: bool) -> Result<()> {
        let meta = self
            .lstat(hive)?
            .with_context(|| format!("{hive}: no such registry hive"))?;
        if meta.kind != Kind::File {
            bail!("{hive} is not a regular file (a registry hive is)");
        }
        self.g
            .hivex_open(
                hive,
                guestfs::HivexOpenOptArgs {
                    verbose: None,
                    debug: None,
                    write: Some(write),
                    // Reading a hive a crashed Windows left dirty; writes stay checked.
                    unsafe_: Some(!write),
                },
            )
            .api()
            .with_context(|| format!("opening registry hive {hive}"))
    }

    /// The node at `key` below the root, `None` where a component is missing.
    fn hive_node(&self, key: &[&str], create: bool) -> Result<Option<i64>> {
        let mut node = self.g.hivex_root().api()?;
        for k in key {
            let child = self.g.hivex_node_get_child(node, k).api()?;
            node = match (child, create) {
                (0, false) => return Ok(None),
                (0, true) => self.g.hivex_node_add_child(node, k).api()?,
                (c, _) => c,
            };
        }
        Ok(Some(node))
    }

    pub(super) fn hive_get(&self, hive: &str, key: &[&str], name: &str) -> Result<Option<RegValue>> {
        self.open_hive(hive, false)?;
        let r = (|| -> Result<Option<RegValue>> {
            let Some(node) = self.hive_node(key, false)? else {
                return Ok(None);
            };
            let v = self.g.hivex_node_get_value(node, name).api()?;
            if v == 0 {
                return Ok(None);
            }
            Ok(Some(RegValue {
                kind: self.g.hivex_value_type(v).api()? as u32,
                data: self.g.hivex_value_value(v).api()?,
            }))
        })()
        .with_context(|| format!("reading {}\\{name} in {hive}", key.join("\\")));
        let _ = self.g.hivex_close();
        r
    }

    pub(super) fn hive_set(&self, hive: &str, edits: &[RegEdit]) -> Result<()> {
        // hivex commits in place: a hive that other names share gets an inode of its own
        // first (the hard-link contract in guest/mod.rs).
        if let Some(m) = self.lstat(hive)? {
            if m.kind == Kind::File && m.is_shared() {
                self.replace_shared(hive, &m, Fill::Copy, |_| Ok(()))?;
            }
        }
        self.open_hive(hive, true)?;
        let r = (|| -> Result<()> {
            for e in edits {
                let key: Vec<&str> = e.key.iter().map(String::as_str).collect();
                let node = self.hive_node(&key, true)?.expect("created");
                for (name, v) in &e.values {
                    self.g
                        .hivex_node_set_value(node, name, i64::from(v.kind), &v.data)
                        .api()
                        .with_context(|| format!("setting {}\\{name}", e.key.join("\\")))?;
                }
            }
            self.g.hivex_commit(None).api().context("committing")
        })()
        .with_context(|| format!("editing registry hive {hive}"));
        let _ = self.g.hivex_close();
        self.changed(hive);
        r
    }
}
