//! Publish targets: the golden disk in the form each repository takes.

pub mod codec;
pub mod hash;
