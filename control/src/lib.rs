//! farm-control: farmd and farmctl.

#![forbid(unsafe_code)]

pub mod api;
pub mod checkers;
pub mod lifecycle;
pub mod logs;
pub mod restart;
pub mod scripts;
