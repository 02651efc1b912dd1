//! The web console (farmd's `GET /`) in a real browser against a 3-node lab: headless Chromium
//! (Debian's `chromium`, installed by `tests/install-deps.sh`) runs in the lab's client
//! namespace and opens `http://<node address>:9010/` like an operator's browser would; the test
//! drives it over the DevTools protocol. Needs root.
//!
//! Why `headless_chrome`: a maintained crate with a synchronous API (no async runtime in a test
//! whose lab helpers are synchronous) that speaks the DevTools protocol itself, so the test
//! gets the page's console messages, uncaught exceptions, failed requests and CSP violations
//! as events; no driver binary (WebDriver would need `chromium-driver` and an async client,
//! and WebDriver does not report console errors).
//!
//! Every case fails on any console error, exception, failed request or HTTP error the page
//! met. Screenshots go to `<target>/console-test/`.
//!
//! One lab (prefix `e2ew`) is shared by the cases (`common::run_suite`); each case starts with
//! every node UP and the tables settled.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use farm_tests::lab::client::spawn_in;
use farm_tests::lab::Lab;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Log, Network, Page, Runtime};
use headless_chrome::{Browser, LaunchOptions, Tab};

const PREFIX: &str = "e2ew";
/// Where Debian's package puts the browser (`CHROMIUM` overrides it).
const CHROMIUM: &str = "/usr/bin/chromium";
const WINDOW: (u32, u32) = (1280, 1800);

static BROWSER_PATH: OnceLock<PathBuf> = OnceLock::new();

fn main() -> ExitCode {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    assert!(
        chromium.is_file(),
        "e2e_console needs Chromium at {} (set CHROMIUM to another path): run `bash tests/install-deps.sh` \
         (apt-get install chromium) first",
        chromium.display()
    );
    BROWSER_PATH.set(chromium).expect("set once");
    let bins = common::build_bins();
    common::run_suite(PREFIX, || common::farm_options(PREFIX, bins.clone()), &[
        ("the_page_shows_every_node_up_without_a_console_error", every_node_up),
        ("a_node_stopped_from_the_page_is_stop_on_the_page_and_in_farmctl", stop_from_the_page),
        ("the_bucket_map_changes_colours_after_a_failover", map_after_failover),
    ])
}

/// `<target>/console-test/` (next to the test binary's profile directory).
fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe.ancestors().nth(3).expect("test binary under <target>/<profile>/deps");
    let dir = target.join("console-test");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// A browser in the lab's client namespace with one tab, and what went wrong on its pages.
struct Console {
    tab: Arc<Tab>,
    problems: Arc<Mutex<Vec<String>>>,
    client_ns: String,
    browser: Option<Browser>,
}

impl Console {
    /// Starts Chromium inside the client namespace (its process, and the DevTools connection
    /// made from that thread, live there) and opens node `i`'s console.
    fn open(lab: &Lab, i: usize) -> Console {
        let t = Instant::now();
        let path = BROWSER_PATH.get().expect("chromium located").clone();
        let browser = spawn_in(&lab.client_ns(), move || {
            let opts = LaunchOptions {
                path: Some(path),
                // As root, Chromium refuses to start with its sandbox.
                sandbox: false,
                window_size: Some(WINDOW),
                idle_browser_timeout: Duration::from_secs(300),
                args: vec!["--no-proxy-server".as_ref(), "--hide-scrollbars".as_ref()],
                ..LaunchOptions::default()
            };
            Browser::new(opts).map_err(|e| e.to_string())
        })
        .expect("a thread in the client namespace")
        .join()
        .expect("the browser thread")
        .unwrap_or_else(|e| panic!("start Chromium: {e}"));
        let tab = browser.new_tab().expect("a tab");
        tab.set_default_timeout(Duration::from_secs(20));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let sink = problems.clone();
        tab.add_event_listener(Arc::new(move |ev: &Event| {
            let problem = match ev {
                Event::RuntimeConsoleAPICalled(e)
                    if matches!(
                        e.params.Type,
                        Runtime::ConsoleAPICalledEventTypeOption::Error | Runtime::ConsoleAPICalledEventTypeOption::Assert
                    ) =>
                {
                    let args: Vec<String> = e
                        .params
                        .args
                        .iter()
                        .map(|a| a.value.as_ref().map(ToString::to_string).or_else(|| a.description.clone()).unwrap_or_default())
                        .collect();
                    Some(format!("console.{:?}: {}", e.params.Type, args.join(" ")))
                }
                Event::RuntimeExceptionThrown(e) => {
                    let d = &e.params.exception_details;
                    let what = d.exception.as_ref().and_then(|x| x.description.clone()).unwrap_or_else(|| d.text.clone());
                    Some(format!("exception at {}:{}: {what}", d.url.clone().unwrap_or_default(), d.line_number))
                }
                Event::LogEntryAdded(e) if e.params.entry.level == Log::LogEntryLevel::Error => {
                    Some(format!("log error ({:?}): {} {}", e.params.entry.source, e.params.entry.text, e.params.entry.url.clone().unwrap_or_default()))
                }
                Event::NetworkLoadingFailed(e) if e.params.canceled != Some(true) => {
                    Some(format!("request failed: {} {:?}", e.params.error_text, e.params.blocked_reason))
                }
                Event::NetworkResponseReceived(e) if e.params.response.status >= 400 => {
                    Some(format!("HTTP {} for {}", e.params.response.status, e.params.response.url))
                }
                _ => None,
            };
            if let Some(p) = problem {
                sink.lock().unwrap().push(p);
            }
        }))
        .expect("event listener");
        tab.enable_runtime().expect("Runtime.enable");
        tab.enable_log().expect("Log.enable");
        tab.call_method(Network::Enable { max_total_buffer_size: None, max_resource_buffer_size: None, max_post_data_size: None, report_direct_socket_traffic: None, enable_durable_messages: None })
            .expect("Network.enable");
        let url = format!("http://{}:{}/", lab.node_addr(i), lab.api_addr().unwrap().port());
        tab.navigate_to(&url).and_then(|t| t.wait_until_navigated()).unwrap_or_else(|e| panic!("open {url}: {e}"));
        println!("  {url} open in Chromium after {:.1} s", t.elapsed().as_secs_f64());
        let c = Console { tab, problems, client_ns: lab.client_ns(), browser: Some(browser) };
        c.wait("the page to draw its first status", Duration::from_secs(10), |c| c.eval("document.querySelectorAll('#members tbody tr').length") != "0");
        c
    }

    /// Evaluates `js` in the page; its value as a string (JSON for objects).
    fn eval(&self, js: &str) -> String {
        let v = self.tab.evaluate(js, false).unwrap_or_else(|e| panic!("evaluate {js}: {e}"));
        match v.value {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    /// Waits (polling every 100 ms) until `f` holds.
    fn wait(&self, what: &str, limit: Duration, f: impl Fn(&Console) -> bool) -> Duration {
        let t = Instant::now();
        while !f(self) {
            assert!(t.elapsed() < limit, "the console: waited {limit:?} for {what}; members now {:?}", self.members());
            std::thread::sleep(Duration::from_millis(100));
        }
        t.elapsed()
    }

    /// The farm table as drawn: node name → the state its badge shows.
    fn members(&self) -> BTreeMap<String, String> {
        let js = "JSON.stringify(Array.from(document.querySelectorAll('#members tbody tr'))\
                  .map(r => [r.dataset.node, r.querySelector('.state').dataset.state]))";
        let rows: Vec<(String, String)> = serde_json::from_str(&self.eval(js)).unwrap_or_default();
        rows.into_iter().collect()
    }

    /// The bucket map as drawn: the owner of each bucket, read from the canvas's pixels (the
    /// centre of each cell) and the legend's colours; `None` for a colour of no node (unowned,
    /// or a handover's stripes). Also the handovers the legend counts.
    fn bucket_map(&self) -> (Vec<Option<String>>, u64) {
        let js = r#"(() => {
            const c = document.getElementById('bucket-map');
            const cell = +c.dataset.cell, cols = +c.dataset.cols, n = +c.dataset.buckets;
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const hex = (i) => '#' + [px[i], px[i + 1], px[i + 2]].map(v => v.toString(16).padStart(2, '0')).join('');
            const owners = {};
            for (const li of document.querySelectorAll('#bucket-legend li[data-colour]')) owners[li.dataset.colour] = li.dataset.node;
            const cells = [];
            for (let b = 0; b < n; b++) {
                const x = (b % cols) * cell + (cell >> 1), y = Math.floor(b / cols) * cell + (cell >> 1);
                cells.push(owners[hex((y * c.width + x) * 4)] || null);
            }
            return JSON.stringify({ cells, handovers: +c.dataset.handovers });
        })()"#;
        let v: serde_json::Value = serde_json::from_str(&self.eval(js)).expect("bucket map JSON");
        let cells = v["cells"].as_array().expect("cells").iter().map(|c| c.as_str().map(str::to_owned)).collect();
        (cells, v["handovers"].as_u64().unwrap_or(u64::MAX))
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .tab
            .capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("screenshot");
        let path = out_dir().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        println!("  screenshot {}", path.display());
        path
    }

    fn click(&self, selector: &str) {
        self.tab.wait_for_element(selector).and_then(|e| e.click().map(|_| ())).unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Types the lab's token into the token field and keeps it (sessionStorage).
    fn enter_token(&self, token: &str) {
        self.click("#token");
        self.tab.type_str(token).expect("type the token");
        self.click("#token-use");
        assert_eq!(self.eval("sessionStorage.getItem('farm.console.token')"), token, "token kept for the tab");
        assert_eq!(self.eval("document.getElementById('token').value"), "", "the field is emptied");
    }

    /// Clicks an action's button, checks the confirmation dialog, accepts it.
    fn act(&self, action: &str) {
        self.click(&format!("#actions button[data-action='{action}']"));
        self.wait("the confirmation dialog", Duration::from_secs(5), |c| c.eval("document.getElementById('confirm').open") == "true");
        let text = self.eval("document.getElementById('confirm-text').textContent");
        assert!(!text.is_empty(), "the dialog says what {action} does");
        self.click("#confirm-ok");
        self.wait("the action's answer", Duration::from_secs(10), |c| {
            c.eval("document.getElementById('action-result').className") == "ok"
        });
        assert_eq!(self.eval("document.getElementById('confirm').open"), "false");
    }

    /// Fails on any problem the page met so far.
    fn assert_clean(&self) {
        let p = self.problems.lock().unwrap();
        assert!(p.is_empty(), "the console page met problems:\n  {}", p.join("\n  "));
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // Closing the browser kills its main process; its helpers (zygote, renderer, GPU) follow
        // it. Wait for them so that nothing of Chromium outlives the case in the namespace.
        drop(self.browser.take());
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if chromium_pids(&self.client_ns).is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in chromium_pids(&self.client_ns) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Chromium processes in namespace `ns`.
fn chromium_pids(ns: &str) -> Vec<i32> {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e.to_string_lossy().contains("chromium")))
        .collect()
}

fn all_up(c: &Console) -> bool {
    let m = c.members();
    m.len() == 3 && m.values().all(|s| s == "UP")
}

fn token(lab: &Lab) -> String {
    let f = lab.farm_files().token;
    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).trim().to_owned()
}

fn every_node_up(lab: &mut Lab) {
    let c = Console::open(lab, 1);
    let took = c.wait("3 nodes UP on the page", Duration::from_secs(10), all_up);
    println!("  3 nodes UP on the page after {:.1} s", took.as_secs_f64());
    // Traffic for the charts, and logs for their panes: only with the token (none fetched before).
    let spread = lab.curl_spread(&lab.client_addrs(), 80).expect("requests to the VIP");
    assert!(spread.failures().is_empty(), "{:?}", spread.failures());
    c.wait("the log panes to ask for the token", Duration::from_secs(10), |c| {
        c.eval("document.getElementById('log-module').textContent.includes('need the API token')") == "true"
    });
    c.enter_token(&token(lab));
    c.wait("the charts to have a few seconds of counters", Duration::from_secs(10), |c| {
        c.eval("document.getElementById('log-module').textContent.includes('state ')") == "true"
    });
    std::thread::sleep(Duration::from_secs(3));
    // The page's numbers are the API's.
    let st = lab.status_json(1).unwrap();
    let owned = c.eval("document.querySelector('#members tr[data-node=\"n1\"] td:nth-child(5)').textContent");
    assert_eq!(owned, st["buckets_owned"].to_string(), "buckets of n1");
    let links = c.eval("JSON.stringify(Array.from(document.querySelectorAll('#members a')).map(a => a.href))");
    for i in 1..=3 {
        assert!(links.contains(&format!("http://{}:9010/", lab.node_addr(i))), "a link to n{i}'s console: {links}");
    }
    assert!(c.eval("document.getElementById('checkers').tBodies[0].rows.length").parse::<u32>().unwrap() >= 1);
    let (cells, handovers) = c.bucket_map();
    assert_eq!(handovers, 0);
    assert!(cells.iter().all(Option::is_some), "every cell has an owner's colour");
    c.screenshot("console-3-up.png");
    c.assert_clean();
}

fn stop_from_the_page(lab: &mut Lab) {
    let c = Console::open(lab, 1);
    c.wait("3 nodes UP on the page", Duration::from_secs(10), all_up);
    // Without a token the page asks for it and sends nothing.
    c.click("#actions button[data-action='stop']");
    assert_eq!(c.eval("document.getElementById('confirm').open"), "false", "a confirmation without a token");
    assert_eq!(c.eval("document.getElementById('action-result').className"), "err");
    c.enter_token(&token(lab));
    let t = Instant::now();
    c.act("stop");
    let took = c.wait("n1 STOP on the page", Duration::from_secs(30), |c| c.members().get("n1").is_some_and(|s| s == "STOP"));
    println!("  n1 STOP on the page {:.1} s after the click", t.elapsed().as_secs_f64());
    let out = lab.farmctl(1, &["state"]).unwrap();
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).trim()), (Some(0), "STOP"), "farmctl state on n1: {out:?}");
    // The peers see it leave.
    c.wait("n1's buckets taken over", Duration::from_secs(10), |c| {
        c.eval("document.querySelector('#members tr[data-node=\"n1\"] td:nth-child(5)').textContent") == "0"
    });
    assert!(took < Duration::from_secs(30));
    c.screenshot("console-n1-stopped.png");
    // And back from the page.
    c.act("start");
    c.wait("n1 UP again on the page", Duration::from_secs(30), all_up);
    c.assert_clean();
}

fn map_after_failover(lab: &mut Lab) {
    let c = Console::open(lab, 1);
    c.wait("3 nodes UP and a settled map", Duration::from_secs(10), |c| all_up(c) && c.bucket_map().1 == 0);
    let (before, _) = c.bucket_map();
    let count = |cells: &[Option<String>], n: &str| cells.iter().filter(|o| o.as_deref() == Some(n)).count();
    assert!(before.iter().all(Option::is_some), "a colour of no node before the failover");
    assert!((1..=3).all(|i| count(&before, &format!("n{i}")) > 0), "every node owns cells");
    // The page's picture is the table n1's data plane applies.
    let table = lab.assignment(1).unwrap();
    let named = |o: &Option<usize>| o.map(|i| format!("n{i}"));
    assert_eq!(before, table.owners.iter().map(named).collect::<Vec<_>>(), "the map is n1's table");
    c.screenshot("console-before-failover.png");
    let t = Instant::now();
    lab.kill_node(3).unwrap();
    let took = c.wait("n3's colour gone from the map", Duration::from_secs(15), |c| {
        let (cells, handovers) = c.bucket_map();
        handovers == 0 && count(&cells, "n3") == 0 && cells.iter().all(Option::is_some)
    });
    println!("  map without n3 {:.1} s after kill -9 (from {} cells)", took.as_secs_f64(), count(&before, "n3"));
    let (after, _) = c.bucket_map();
    for (b, (was, is)) in before.iter().zip(&after).enumerate() {
        if was.as_deref() == Some("n3") {
            assert!(matches!(is.as_deref(), Some("n1" | "n2")), "bucket {b}: n3's, now {is:?}");
        } else {
            assert_eq!(was, is, "bucket {b} moved though its owner lives");
        }
    }
    let m = c.members();
    assert_eq!((m["n1"].as_str(), m["n2"].as_str()), ("UP", "UP"));
    assert_eq!(m["n3"], "UNREACHABLE", "{m:?}");
    assert!(t.elapsed() < Duration::from_secs(15));
    c.screenshot("console-after-failover.png");
    c.assert_clean();
}
