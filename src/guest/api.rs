//! libguestfs errors as goldify reports them: the crate's errors (which only derive Debug)
//! turned into messages with their errno, and libguestfs' default handler silenced (many
//! "errors" are expected answers, such as a path that does not exist).

use anyhow::{anyhow, Result};
use regex::Regex;
use std::sync::LazyLock;

/// A libguestfs error as an anyhow error with its message (the crate only derives Debug).
pub fn api_error(e: guestfs::Error) -> anyhow::Error {
    match &e {
        guestfs::Error::API(_) => {
            let dbg = format!("{e:?}");
            static FIELDS: LazyLock<Regex> = LazyLock::new(|| {
                Regex::new(r#"operation: "([^"]*)", message: "((?:[^"\\]|\\.)*)", errno: (-?\d+)"#)
                    .expect("static regex")
            });
            match FIELDS.captures(&dbg) {
                Some(c) => {
                    let msg = c[2].replace("\\n", " ").replace("\\\"", "\"").replace("\\\\", "\\");
                    let errno: i32 = c[3].parse().unwrap_or(0);
                    anyhow::Error::new(ApiError {
                        operation: c[1].to_string(),
                        message: msg,
                        errno,
                    })
                }
                None => anyhow!("libguestfs: {dbg}"),
            }
        }
        guestfs::Error::IllegalString(_) => anyhow!("path contains a NUL byte"),
        guestfs::Error::Utf8Error(_) => anyhow!("libguestfs returned a name that is not UTF-8"),
        guestfs::Error::Create => anyhow!("cannot create a libguestfs handle"),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub operation: String,
    pub message: String,
    pub errno: i32,
}

pub(crate) fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.downcast_ref::<ApiError>().map(|a| a.errno)
}

pub(crate) trait Api<T> {
    fn api(self) -> Result<T>;
}

impl<T> Api<T> for std::result::Result<T, guestfs::Error> {
    fn api(self) -> Result<T> {
        self.map_err(api_error)
    }
}

#[link(name = "guestfs")]
extern "C" {
    fn guestfs_set_error_handler(g: *mut std::ffi::c_void, cb: *const std::ffi::c_void, data: *mut std::ffi::c_void);
}

/// libguestfs prints every error to stderr by default; goldify reports errors itself, once,
/// with context, and many "errors" (a path that does not exist) are expected answers.
pub(crate) fn silence_default_error_handler(g: &guestfs::Handle) {
    // The crate keeps the raw handle in its only field and gives no accessor.
    const _: () = assert!(std::mem::size_of::<guestfs::Handle>() == std::mem::size_of::<*mut std::ffi::c_void>());
    unsafe {
        let raw = *(g as *const guestfs::Handle as *const *mut std::ffi::c_void);
        guestfs_set_error_handler(raw, std::ptr::null(), std::ptr::null_mut());
    }
}
