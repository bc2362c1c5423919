//! The crate's integration tests, one binary: each file of tests/ is a module here, so the
//! test build links one executable per crate instead of one per file (disk and link time).

#[macro_use]
mod common;

mod indexed;
mod pages;
mod store;
mod tally;
