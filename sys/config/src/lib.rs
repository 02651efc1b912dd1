//! The farm configuration file: one TOML file shared by `farmd` (control) and
//! `farm-dataplane`.
//!
//! [`Config::load`] reads, parses and validates a file; every error names the file, the
//! line:column, the key (e.g. `vip[0].rule[1].ports`) and what was expected. Checks that look
//! at the machine (secret file mode, scripts, the data-plane program) are a separate step,
//! [`Config::check_runtime`]. The keys are documented for users in `configs/README.md`.
//!
//! ```
//! let cfg = farm_config::Config::from_str(r#"
//!     [module]
//!     name = "web"
//!     cluster_id = 7
//!     secret_file = "/etc/farm/web.secret"
//!
//!     [[node]]
//!     name = "n1"
//!     addrs = ["198.18.0.1"]
//!
//!     [[vip]]
//!     addr = "198.18.0.100"
//!     [[vip.rule]]
//!     proto = "tcp"
//!     ports = "80"
//!
//!     [dataplane]
//!     uplink = "net_af_packet0,iface=veth0"
//! "#, "example.toml").unwrap();
//! assert_eq!(cfg.buckets(), 4096);
//! assert_eq!(cfg.heartbeat.pulse, std::time::Duration::from_millis(100));
//! assert_eq!(cfg.dataplane.file_prefix, "farm-web");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checker;
mod config;
mod error;
pub mod init;
mod locate;
mod nodes;
mod runtime;
mod sections;
pub mod seed;
mod tap;
mod types;
mod validate;

pub use checker::{Action, Check, Checker, InterfaceTarget, ProcessMatch};
pub use config::Config;
pub use error::{ConfigError, Problem, Problems};
pub use farm_table::Affinity;
pub use nodes::{Node, Rule, Vip};
pub use runtime::MIN_SECRET_LEN;
pub use seed::HashSeedFrom;
pub use sections::{
    Api, Assignment, Dataplane, Heartbeat, LocalPort, Mode, Module, Restart, Scripts, Takeover,
};
pub use tap::{TapAddr, TapHost};
pub use types::{
    Buckets, HashSeed, IfName, MacAddr, ModuleName, Name, NodeId, Ports, Proto, Uplink, Weight,
};

/// An error and its causes on one line, each cause once: `Display` impls that already
/// include their source (as several of ours do, for logs) are not repeated. For the
/// binaries' "one clear error line".
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}
