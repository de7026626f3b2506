//! Publish targets: the golden disk in the form each repository takes.

pub mod atomic;
pub mod codec;
pub mod hash;
pub mod stream;
pub mod settings;
pub mod repo;
