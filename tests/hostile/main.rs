//! The hostile-input suite (issue "Trust"): hostile disk images, hostile guests, hostile
//! repositories and an unlucky operator. Every case asserts the exact exit code, the one
//! error line, and that nothing outside the expected paths changed (hashes of sentinels,
//! modes of created files).
//!
//! One module per kind of attacker; each case is a regression test that failed before its
//! fix. Images are built by the fixture scripts (vm-fixtures/) or, for disk headers that
//! must name host files the test creates, by qemu-img inside the test.

#[path = "../common/mod.rs"]
mod common;

mod blocking;
mod disks;
mod guests;
mod outputs;
mod repo_upkeep;
mod repos;
mod work_files;
