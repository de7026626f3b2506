//! Hostile-input cases: disks. See main.rs.

#[allow(unused_imports)]
use crate::common::*;
