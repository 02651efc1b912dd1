//! `[[checker]]`: health checks of the application, the node and the data plane.
//!
//! The file uses one flat table per checker with a `kind` key; the fields allowed depend on
//! the kind. It is parsed as a flat struct (so every error keeps its position in the file)
//! and then turned into the typed [`Check`] enum, refusing fields foreign to the kind.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::types::{duration, IfName, Name};
use crate::validate::Report;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Process,
    Tcp,
    Http,
    Custom,
    Interface,
    Ping,
    Dataplane,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Process => "process",
            Kind::Tcp => "tcp",
            Kind::Http => "http",
            Kind::Custom => "custom",
            Kind::Interface => "interface",
            Kind::Ping => "ping",
            Kind::Dataplane => "dataplane",
        }
    }
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Process => &["process", "pattern", "at_least"],
            Kind::Tcp => &["addr", "port"],
            Kind::Http => &["url", "expect_status", "expect_text"],
            Kind::Custom => &["script"],
            Kind::Interface => &["interface"],
            Kind::Ping => &["addr"],
            Kind::Dataplane => &[],
        }
    }
}

/// What a failing checker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Restart the module locally (counts against `[restart] maxloop`).
    Restart,
    /// Stop the module, then start it again (full leave and join).
    Stopstart,
    /// Hold the node in WAIT (owning no bucket) until the checker succeeds again.
    Wait,
}

/// `[[checker]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckerSpec {
    name: Name,
    kind: Kind,
    process: Option<String>,
    pattern: Option<String>,
    at_least: Option<u32>,
    #[serde(default, deserialize_with = "crate::types::ip::opt")]
    addr: Option<IpAddr>,
    port: Option<u16>,
    url: Option<String>,
    expect_status: Option<u16>,
    expect_text: Option<String>,
    script: Option<PathBuf>,
    interface: Option<String>,
    #[serde(default = "one_second", with = "duration")]
    interval: Duration,
    #[serde(default = "one_second", with = "duration")]
    timeout: Duration,
    #[serde(default = "three")]
    fail_after: u32,
    #[serde(default = "two")]
    ok_after: u32,
    action: Option<Action>,
    #[serde(default, with = "duration")]
    start_delay: Duration,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn three() -> u32 {
    3
}
fn two() -> u32 {
    2
}

/// How a process checker finds its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessMatch {
    /// Exact process name (`/proc/<pid>/comm`, at most 15 characters, or argv\[0\]'s file name).
    Name(String),
    /// Regular expression (Rust `regex` syntax, already validated) matched against the
    /// command line (arguments joined by spaces).
    Pattern(String),
}

/// Which interface an interface checker watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceTarget {
    /// The data plane's uplink link state (reported through the table).
    Uplink,
    /// A kernel interface (operational state UP).
    Kernel(IfName),
}

/// What a checker tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// At least `at_least` matching processes exist.
    Process {
        /// How processes are matched.
        matcher: ProcessMatch,
        /// Minimum count (default 1).
        at_least: u32,
    },
    /// A TCP connection to `addr` succeeds within the timeout.
    Tcp {
        /// Address (default host 127.0.0.1).
        addr: SocketAddr,
    },
    /// An HTTP GET returns the expected status (and text).
    Http {
        /// `http://` URL.
        url: String,
        /// Expected status (default 200).
        expect_status: u16,
        /// Text the body must contain.
        expect_text: Option<String>,
    },
    /// A script exits 0 within the timeout.
    Custom {
        /// The script (relative paths resolved against `[scripts] dir`).
        script: PathBuf,
    },
    /// A link is up.
    Interface {
        /// The interface.
        target: InterfaceTarget,
    },
    /// An ICMP echo to `addr` is answered.
    Ping {
        /// The address pinged (e.g. the default gateway).
        addr: IpAddr,
    },
    /// The data plane's liveness stamp is fresher than `[dataplane] liveness_timeout`.
    Dataplane,
}

impl Check {
    /// The `kind` string of the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Process { .. } => "process",
            Check::Tcp { .. } => "tcp",
            Check::Http { .. } => "http",
            Check::Custom { .. } => "custom",
            Check::Interface { .. } => "interface",
            Check::Ping { .. } => "ping",
            Check::Dataplane => "dataplane",
        }
    }
}

/// A health checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checker {
    /// Unique name.
    pub name: Name,
    /// What it tests.
    pub check: Check,
    /// Time between runs (default 1s).
    pub interval: Duration,
    /// Time limit of one run (default 1s).
    pub timeout: Duration,
    /// Consecutive failures before the action (default 3).
    pub fail_after: u32,
    /// Consecutive successes before a failed checker counts as OK again (default 2).
    pub ok_after: u32,
    /// What happens on failure (default `wait` for interface and ping, `restart` otherwise).
    pub action: Action,
    /// Delay after the module starts before the first run (default 0s).
    pub start_delay: Duration,
}

impl CheckerSpec {
    fn present(&self) -> [(&'static str, bool); 10] {
        [
            ("process", self.process.is_some()),
            ("pattern", self.pattern.is_some()),
            ("at_least", self.at_least.is_some()),
            ("addr", self.addr.is_some()),
            ("port", self.port.is_some()),
            ("url", self.url.is_some()),
            ("expect_status", self.expect_status.is_some()),
            ("expect_text", self.expect_text.is_some()),
            ("script", self.script.is_some()),
            ("interface", self.interface.is_some()),
        ]
    }

    fn resolve(self, at: &str, scripts_dir: Option<&PathBuf>, r: &mut Report) -> Option<Checker> {
        let kind = self.kind;
        let allowed = kind.fields();
        let mut ok = true;
        for (field, set) in self.present() {
            if set && !allowed.contains(&field) {
                let list = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                r.err(
                    format!("{at}.{field}"),
                    format!(
                        "not allowed with kind = \"{}\" (its fields: {list})",
                        kind.name()
                    ),
                );
                ok = false;
            }
        }
        let missing = |r: &mut Report, field: &str, what: &str| {
            r.err(
                at,
                format!(
                    "missing {field}: expected {what} for kind = \"{}\"",
                    kind.name()
                ),
            );
        };
        let check = match kind {
            Kind::Process => {
                let matcher = match (self.process, self.pattern) {
                    (Some(p), None) if !p.is_empty() => Some(ProcessMatch::Name(p)),
                    (None, Some(p)) => match regex::Regex::new(&p) {
                        Ok(_) => Some(ProcessMatch::Pattern(p)),
                        Err(e) => {
                            r.err(
                                format!("{at}.pattern"),
                                format!(
                                    "expected a regular expression: {}",
                                    one_line(&e.to_string())
                                ),
                            );
                            None
                        }
                    },
                    (Some(_), Some(_)) => {
                        r.err(
                            format!("{at}.pattern"),
                            "expected either process or pattern, not both",
                        );
                        None
                    }
                    (Some(_), None) => {
                        r.err(format!("{at}.process"), "expected a non-empty process name");
                        None
                    }
                    (None, None) => {
                        missing(r, "process", "process = \"name\" or pattern = \"regex\"");
                        None
                    }
                };
                let at_least = self.at_least.unwrap_or(1);
                if at_least == 0 {
                    r.err(format!("{at}.at_least"), "expected at least 1");
                }
                matcher.map(|matcher| Check::Process { matcher, at_least })
            }
            Kind::Tcp => match self.port {
                Some(0) => {
                    r.err(format!("{at}.port"), "expected a port between 1 and 65535");
                    None
                }
                Some(port) => Some(Check::Tcp {
                    addr: SocketAddr::new(
                        self.addr.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                        port,
                    ),
                }),
                None => {
                    missing(r, "port", "port = <1..65535>");
                    None
                }
            },
            Kind::Http => {
                let status = self.expect_status.unwrap_or(200);
                if !(100..=599).contains(&status) {
                    r.err(
                        format!("{at}.expect_status"),
                        format!("expected an HTTP status between 100 and 599, got {status}"),
                    );
                }
                match self.url {
                    Some(url)
                        if url
                            .strip_prefix("http://")
                            .is_some_and(|rest| !rest.is_empty()) =>
                    {
                        Some(Check::Http {
                            url,
                            expect_status: status,
                            expect_text: self.expect_text,
                        })
                    }
                    Some(url) => {
                        r.err(
                            format!("{at}.url"),
                            format!(
                                "expected an http:// URL (https is not supported), got {url:?}"
                            ),
                        );
                        None
                    }
                    None => {
                        missing(r, "url", "url = \"http://127.0.0.1/...\"");
                        None
                    }
                }
            }
            Kind::Custom => match self.script {
                Some(s) if s.is_absolute() => Some(Check::Custom { script: s }),
                Some(s) => match scripts_dir {
                    Some(dir) if !s.as_os_str().is_empty() => Some(Check::Custom {
                        script: dir.join(s),
                    }),
                    _ => {
                        r.err(format!("{at}.script"), format!("expected an absolute path or [scripts] dir to resolve it against, got {:?}", s.display().to_string()));
                        None
                    }
                },
                None => {
                    missing(r, "script", "script = \"/path/to/check\"");
                    None
                }
            },
            Kind::Interface => match self.interface.as_deref() {
                Some("uplink") => Some(Check::Interface {
                    target: InterfaceTarget::Uplink,
                }),
                Some(name) => match IfName::try_from(name.to_string()) {
                    Ok(n) => Some(Check::Interface {
                        target: InterfaceTarget::Kernel(n),
                    }),
                    Err(e) => {
                        r.err(format!("{at}.interface"), format!("{e} (or \"uplink\")"));
                        None
                    }
                },
                None => {
                    missing(
                        r,
                        "interface",
                        "interface = \"uplink\" or an interface name",
                    );
                    None
                }
            },
            Kind::Ping => match self.addr {
                Some(addr) => Some(Check::Ping { addr }),
                None => {
                    missing(r, "addr", "addr = \"<IP address>\"");
                    None
                }
            },
            Kind::Dataplane => Some(Check::Dataplane),
        };
        if self.interval.is_zero() {
            r.err(format!("{at}.interval"), "expected a duration above zero");
        }
        if self.timeout.is_zero() {
            r.err(format!("{at}.timeout"), "expected a duration above zero");
        }
        if self.fail_after == 0 {
            r.err(format!("{at}.fail_after"), "expected at least 1");
        }
        if self.ok_after == 0 {
            r.err(format!("{at}.ok_after"), "expected at least 1");
        }
        let default_action = match kind {
            Kind::Interface | Kind::Ping => Action::Wait,
            _ => Action::Restart,
        };
        Some(Checker {
            name: self.name,
            check: check.filter(|_| ok)?,
            interval: self.interval,
            timeout: self.timeout,
            fail_after: self.fail_after,
            ok_after: self.ok_after,
            action: self.action.unwrap_or(default_action),
            start_delay: self.start_delay,
        })
    }
}

pub(crate) fn resolve_checkers(
    specs: Vec<CheckerSpec>,
    scripts_dir: Option<&PathBuf>,
    dataplane_enabled: bool,
    r: &mut Report,
) -> Vec<Checker> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let at = format!("checker[{i}]");
        if let Some(j) = names.insert(spec.name.as_str().to_string(), i) {
            r.err(
                format!("{at}.name"),
                format!(
                    "duplicate checker name {:?} (also checker[{j}].name)",
                    spec.name.as_str()
                ),
            );
        }
        let Some(c) = spec.resolve(&at, scripts_dir, r) else {
            continue;
        };
        let needs_dp = match &c.check {
            Check::Dataplane => Some("kind"),
            Check::Interface {
                target: InterfaceTarget::Uplink,
            } => Some("interface"),
            _ => None,
        };
        if let (Some(key), false) = (needs_dp, dataplane_enabled) {
            r.err(
                format!("{at}.{key}"),
                "expected [dataplane] enabled = true: this checker watches the data plane",
            );
        }
        out.push(c);
    }
    out
}

/// The last line of a multi-line message (regex syntax errors draw a caret diagram).
fn one_line(msg: &str) -> String {
    let last = msg
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(msg);
    last.trim().trim_start_matches("error: ").to_string()
}
