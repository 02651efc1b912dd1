//! The farm configuration file (work in progress).
#![forbid(unsafe_code)]
