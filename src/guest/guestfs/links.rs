//! Hard links are never written through: a name whose inode other names share gets an
//! inode of its own before its content, mode or owner changes (the contract in guest/mod.rs).

use super::GuestfsGuest;
use crate::guest::api::Api;
use crate::guest::Meta;
use anyhow::{Context, Result};

impl GuestfsGuest {
    /// Give `path`, a regular file whose inode other names share (hard links), an inode of
    /// its own: a new file beside it with `fill` as content, the old inode's owner, mode and
    /// extended attributes (SELinux label, ACLs, capabilities), then `finish` applied to it,
    /// then rename(2) over `path`. The other names keep the old inode untouched; writing
    /// in place would change them all (the contract in guest/mod.rs).
    pub(super) fn replace_shared(
        &self,
        path: &str,
        meta: &Meta,
        fill: Fill,
        finish: impl FnOnce(&str) -> Result<()>,
    ) -> Result<()> {
        let dir = crate::guest::parent(path);
        // mkstemp(3) in the guest's directory: a fresh name, mode 0600 until the
        // attributes are copied, on the same filesystem so that rename(2) is atomic.
        let tmp = self
            .g
            .mktemp(
                &crate::guest::join(dir, ".goldify-XXXXXX"),
                guestfs::MktempOptArgs { suffix: None },
            )
            .api()
            .with_context(|| format!("creating a file beside {path} to replace it"))?;
        self.changed(&tmp);
        let r = (|| {
            match fill {
                Fill::Data(data) => self.put(&tmp, data)?,
                // Inside the appliance: the content never travels to the host.
                Fill::Copy => self
                    .g
                    .cp_a(path, &tmp)
                    .api()
                    .with_context(|| format!("copying {path}"))?,
            }
            self.g
                .copy_attributes(
                    path,
                    &tmp,
                    guestfs::CopyAttributesOptArgs {
                        all: Some(true),
                        mode: None,
                        xattributes: None,
                        ownership: None,
                    },
                )
                .api()
                .with_context(|| format!("copying the owner, mode and attributes of {path}"))?;
            // copy_attributes sets the mode before the owner, and chown(2) clears the
            // set-user-ID and set-group-ID bits of a regular file: set the mode again.
            self.g
                .chmod(meta.mode as i32, &tmp)
                .api()
                .with_context(|| format!("copying the mode of {path}"))?;
            finish(&tmp)?;
            self.g
                .rename(&tmp, path)
                .api()
                .with_context(|| format!("replacing {path} (it had {} hard links)", meta.nlink))
        })();
        if r.is_err() {
            let _ = self.g.rm(&tmp);
        }
        self.changed(&tmp);
        self.changed(path);
        r
    }
}

/// What a replaced hard link's new inode holds.
pub(super) enum Fill<'a> {
    Data(&'a [u8]),
    /// The old content, copied inside the appliance (for mode and owner changes).
    Copy,
}
