//! Hostile-input cases: work_files. See main.rs.

#[allow(unused_imports)]
use crate::common::*;
