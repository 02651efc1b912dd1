//! Importers: other products' configurations converted to a farm.toml (`farmctl import`).
//!
//! - [`safekit`]: an Evidian SafeKit farm module (`userconfig.xml`, with the cluster's
//!   `cluster.xml`). Everything written in the source that has no equivalent in farm, or is
//!   converted with another meaning, is reported as a [`safekit::Warning`], never dropped
//!   silently.

pub mod safekit;
