//! The HAProxy traffic step against a fake runtime API (and its parsers against captured answers).

use super::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

const HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

/// Captured from HAProxy 2.6.12 at start: blue checked and up, green `disabled`.
fn at_start() -> String {
    format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 1 1 0 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 0 5 1 1 1 1 0 0 14 0 0 0 - 18082 - 0 0 - - 0\n\n")
}
/// After `set server be/green state ready` and `set server be/blue state drain`.
fn after_switch() -> String {
    format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 8 1 1 0 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 2 4 1 1 1 6 3 4 6 0 0 0 - 18082 - 0 0 - - 0\n\n")
}
/// After `set server be/green state ready` only: both serve.
fn mid_switch() -> String {
    format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 1 1 2 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 2 4 1 1 1 6 3 4 6 0 0 0 - 18082 - 0 0 - - 0\n\n")
}
/// Right after `set server be/green state ready` with nothing listening behind green: HAProxy
/// reports it running (health = rise = 2) before its first check, which then fails.
fn dead_green_just_ready() -> String {
    format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 1 1 0 6 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be 2 green 127.0.0.1 2 4 1 1 0 8 2 2 6 0 0 0 - 18089 - 0 0 - - 0\n\n")
}

/// `show stat be 4 -1 typed`, the lines that matter (captured).
const STAT_TYPED: &str = "S.3.1.0.pxname.1:KNS:str:be\nS.3.1.1.svname.1:KNS:str:blue\nS.3.1.17.status.1:SGP:str:UP\nS.3.1.36.check_status.1:MOP:str:L4OK\nS.3.1.56.last_chk.1:MOP:str:\nS.3.1.67.check_rise.1:CGS:u32:2\nS.3.1.68.check_fall.1:CGS:u32:3\nS.3.1.69.check_health.1:CGS:u32:4\nS.3.2.0.pxname.1:KNS:str:be\nS.3.2.1.svname.1:KNS:str:green\nS.3.2.17.status.1:SGP:str:DOWN\nS.3.2.56.last_chk.1:MOP:str:Connection refused\nS.3.2.67.check_rise.1:CGS:u32:3\nS.3.2.68.check_fall.1:CGS:u32:5\nS.3.2.69.check_health.1:CGS:u32:0\n\n";

fn st(name: &str, op: u32, admin: u32) -> ServerState {
    ServerState {
        name: name.into(),
        op_state: op,
        admin_state: admin,
    }
}

#[test]
fn parses_real_state_dumps() {
    assert_eq!(
        parse_servers_state(&at_start(), "be").unwrap(),
        vec![st("blue", 2, 0), st("green", 0, 5)]
    );
    assert_eq!(
        parse_servers_state(&after_switch(), "be").unwrap(),
        vec![st("blue", 2, 8), st("green", 2, 4)]
    );
    // Another backend's lines are skipped; a backend without servers is empty, not an error.
    assert_eq!(parse_servers_state(&at_start(), "other").unwrap(), vec![]);
    // A server without `check` (check state 0) on a backend be2.
    let nocheck = format!(
        "1\n{HEADER}\n4 be2 1 blue 127.0.0.1 2 0 1 1 1 1 0 2 0 0 0 0 - 18081 - 0 0 - - 0\n"
    );
    let rows = parse_rows(&nocheck, "be2").unwrap();
    assert!(rows[0].live() && rows[0].healthy(None));
}

#[test]
fn haproxy_answers_and_garbage_are_errors() {
    let e = parse_servers_state("Can't find backend.\n\n", "nope").unwrap_err();
    assert_eq!(
        e,
        "HAProxy: `show servers state nope` answered \"Can't find backend.\""
    );
    assert!(parse_servers_state("", "be")
        .unwrap_err()
        .contains("answered nothing"));
    assert!(parse_servers_state("1\n3 be 1 blue\n", "be")
        .unwrap_err()
        .contains("header"));
    let bad = format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 two 0\n");
    assert!(parse_servers_state(&bad, "be")
        .unwrap_err()
        .contains("srv_op_state"));
}

#[test]
fn live_ignores_config_maintenance_and_sees_drain() {
    let live = |t: &str| live_of(&parse_rows(t, "be").unwrap());
    assert_eq!(live(&at_start()), Ok(Some(Colour::Blue)));
    // green at admin 0x04 serves; blue at 0x08 drains.
    assert_eq!(live(&after_switch()), Ok(Some(Colour::Green)));
    assert_eq!(
        live(&mid_switch()),
        Err("both blue and green take traffic".into())
    );
    let none = format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 1 1 1 0 6 3 4 6 0 0 0 - 1 - 0 0 - - 0\n3 be 2 green 127.0.0.1 0 5 1 1 1 1 0 0 14 0 0 0 - 2 - 0 0 - - 0\n");
    assert_eq!(live(&none), Ok(None));
    // Weight 0 takes no traffic.
    let zero =
        format!("1\n{HEADER}\n3 be 1 blue 127.0.0.1 2 0 0 1 0 6 3 4 6 0 0 0 - 1 - 0 0 - - 0\n");
    assert_eq!(live(&zero), Ok(None));
}

#[test]
fn a_just_readied_server_is_not_healthy_until_a_check_passes() {
    let rows = parse_rows(&dead_green_just_ready(), "be").unwrap();
    let green = rows.iter().find(|r| r.name == "green").unwrap();
    assert_eq!(green.op_state, OP_RUNNING, "HAProxy calls it running");
    assert!(!green.healthy(Some(4)));
    let rows = parse_rows(&after_switch(), "be").unwrap();
    assert!(rows.iter().all(|r| r.healthy(Some(4))));
    assert!(
        green.describe().contains("last check failed"),
        "{}",
        green.describe()
    );
}

#[test]
fn check_top_from_typed_stat() {
    assert_eq!(parse_check_top(STAT_TYPED, "blue"), Some(4));
    assert_eq!(parse_check_top(STAT_TYPED, "green"), Some(7));
    assert_eq!(parse_check_top(STAT_TYPED, "red"), None);
    assert_eq!(parse_check_top("No such proxy.\n", "blue"), None);
}

#[test]
fn socket_parse() {
    assert_eq!(
        Socket::parse("unix:/run/ha.sock"),
        Socket::Unix("/run/ha.sock".into())
    );
    assert_eq!(
        Socket::parse("/run/ha.sock"),
        Socket::Unix("/run/ha.sock".into())
    );
    assert_eq!(Socket::parse("ha.sock"), Socket::Unix("ha.sock".into()));
    assert_eq!(
        Socket::parse("tcp:127.0.0.1:9999"),
        Socket::Tcp("127.0.0.1:9999".into())
    );
    assert_eq!(
        Socket::parse("127.0.0.1:9999"),
        Socket::Tcp("127.0.0.1:9999".into())
    );
    assert_eq!(Socket::parse("lb:9999"), Socket::Tcp("lb:9999".into()));
    assert_eq!(
        Socket::parse("[::1]:9999"),
        Socket::Tcp("[::1]:9999".into())
    );
    assert_eq!(Socket::parse("./a:b"), Socket::Unix("./a:b".into()));
}

// ---- against a real HAProxy ---------------------------------------------------------

fn haproxy_bin() -> &'static str {
    if Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A tiny app answering its colour on every path.
async fn app(colour: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let router = axum::Router::new().fallback(move || async move { colour });
    tokio::spawn(async move { axum::serve(l, router).await });
    port
}

struct Ha {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    front: u16,
    tcp_admin: u16,
}

impl Ha {
    fn sock(&self) -> PathBuf {
        self.dir.path().join("ha.sock")
    }
    fn driver(&self, backend: &str) -> HaproxyDriver {
        HaproxyDriver {
            socket: Socket::Unix(self.sock()),
            backend: backend.into(),
            timeout: Duration::from_secs(3),
        }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ha.log")).unwrap_or_default()
    }
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Starts HAProxy with backend `be` (blue up, green `disabled`) and backend `only_blue`.
async fn haproxy(blue: u16, green: u16) -> Ha {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ha.sock");
    let (front, tcp_admin) = (free_port(), free_port());
    let cfg = format!(
        "global\n    stats socket {} mode 600 level admin\n    stats socket ipv4@127.0.0.1:{tcp_admin} level admin\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind 127.0.0.1:{front}\n    default_backend be\n\
         backend be\n    server blue 127.0.0.1:{blue} check inter 100ms\n    server green 127.0.0.1:{green} check inter 100ms disabled\n\
         backend only_blue\n    server blue 127.0.0.1:{blue} check inter 100ms\n",
        sock.display()
    );
    let cfg_path = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let check = std::process::Command::new(haproxy_bin())
        .arg("-c")
        .arg("-f")
        .arg(&cfg_path)
        .output()
        .expect("run haproxy -c (is HAProxy installed?)");
    assert!(
        check.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.path().join("ha.log")).unwrap();
    let child = tokio::process::Command::new(haproxy_bin())
        .arg("-db")
        .arg("-f")
        .arg(&cfg_path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start haproxy");
    let mut ha = Ha {
        child,
        dir,
        front,
        tcp_admin,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = sock.exists()
            && tokio::net::TcpStream::connect(("127.0.0.1", front))
                .await
                .is_ok();
        if up {
            break;
        }
        if let Ok(Some(status)) = ha.child.try_wait() {
            panic!("haproxy exited with {status}: {}", ha.log());
        }
        assert!(
            Instant::now() < deadline,
            "haproxy did not start: {}",
            ha.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ha
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, port: u16) -> Result<String, String> {
    let r = c
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body = r.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Bounded request loop through the frontend: answers by body, and failures.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    done: AtomicUsize,
    seen: Mutex<BTreeMap<String, usize>>,
    failures: Mutex<Vec<String>>,
}

fn start_load(front: u16, workers: usize) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let tasks = (0..workers)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move {
                let c = client();
                for _ in 0..5000 {
                    if load.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match get(&c, front).await {
                        Ok(b) => *load.seen.lock().unwrap().entry(b).or_default() += 1,
                        Err(e) => load.failures.lock().unwrap().push(e),
                    }
                    load.done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    (load, tasks)
}

/// Waits (with a deadline) until the load has made `n` more requests.
async fn more_requests(load: &Load, n: usize) {
    let target = load.done.load(Ordering::SeqCst) + n;
    let deadline = Instant::now() + Duration::from_secs(10);
    while load.done.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "request loop stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn all_answer(front: u16, colour: &str) {
    let c = client();
    for _ in 0..10 {
        assert_eq!(get(&c, front).await.as_deref(), Ok(colour));
    }
}

#[tokio::test]
async fn switches_both_ways_without_losing_a_request() {
    let (blue, green) = (app("blue").await, app("green").await);
    let ha = haproxy(blue, green).await;
    let d = ha.driver("be");
    assert_eq!(d.live().await, Ok(Some(Colour::Blue)));
    assert_eq!(
        d.servers_state().await.unwrap(),
        vec![st("blue", 2, 0), st("green", 0, 5)]
    );
    all_answer(ha.front, "blue").await;

    let (load, tasks) = start_load(ha.front, 2);
    more_requests(&load, 20).await;
    d.switch(Colour::Green, Some(Colour::Blue)).await.unwrap();
    more_requests(&load, 20).await;
    assert_eq!(d.live().await, Ok(Some(Colour::Green)));
    assert_eq!(
        d.servers_state().await.unwrap(),
        vec![st("blue", 2, ADMIN_FDRAIN), st("green", 2, ADMIN_CMAINT)]
    );
    all_answer(ha.front, "green").await;

    // Rollback is the reverse.
    d.switch(Colour::Blue, Some(Colour::Green)).await.unwrap();
    more_requests(&load, 20).await;
    load.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(d.live().await, Ok(Some(Colour::Blue)));
    assert_eq!(
        d.servers_state().await.unwrap(),
        vec![
            st("blue", 2, 0),
            st("green", 2, ADMIN_CMAINT | ADMIN_FDRAIN)
        ]
    );
    all_answer(ha.front, "blue").await;

    let failures = load.failures.lock().unwrap().clone();
    let seen = load.seen.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "failed requests: {failures:?}; seen {seen:?}"
    );
    assert!(seen.get("blue").copied().unwrap_or(0) > 0, "{seen:?}");
    assert!(seen.get("green").copied().unwrap_or(0) > 0, "{seen:?}");
    assert_eq!(seen.keys().len(), 2, "{seen:?}");

    // The TCP admin socket works the same.
    let tcp = HaproxyDriver {
        socket: Socket::parse(&format!("tcp:127.0.0.1:{}", ha.tcp_admin)),
        ..d.clone()
    };
    assert_eq!(tcp.live().await, Ok(Some(Colour::Blue)));
    ha.stop().await;
}

#[tokio::test]
async fn a_dead_target_never_gets_traffic() {
    let blue = app("blue").await;
    let dead = free_port(); // nothing listens behind green
    let ha = haproxy(blue, dead).await;
    let d = ha.driver("be");
    let (load, tasks) = start_load(ha.front, 2);
    more_requests(&load, 20).await;
    let e = d
        .switch_within(
            Colour::Green,
            Some(Colour::Blue),
            Duration::from_millis(1500),
        )
        .await
        .unwrap_err();
    assert!(
        e.contains("green did not pass its HAProxy health check"),
        "{e}"
    );
    assert!(e.contains("op state 0 (stopped)"), "{e}");
    more_requests(&load, 20).await;
    load.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    // Blue still serves; green is back in maintenance.
    assert_eq!(d.live().await, Ok(Some(Colour::Blue)));
    let green = d.servers_state().await.unwrap().remove(1);
    assert_eq!(
        (green.name.as_str(), green.admin_state & ADMIN_FMAINT),
        ("green", ADMIN_FMAINT)
    );
    all_answer(ha.front, "blue").await;
    ha.stop().await;
}

#[tokio::test]
async fn unknown_backend_and_server_quote_haproxy() {
    let (blue, green) = (app("blue").await, app("green").await);
    let ha = haproxy(blue, green).await;

    let nope = ha.driver("nope");
    let e = nope.live().await.unwrap_err();
    assert!(e.contains("Can't find backend."), "{e}");
    let e = nope
        .switch(Colour::Green, Some(Colour::Blue))
        .await
        .unwrap_err();
    assert!(e.contains("Can't find backend."), "{e}");

    // The raw command returns HAProxy's text; callers decide.
    let d = ha.driver("be");
    assert_eq!(
        d.command("set server be/purple state ready")
            .await
            .as_deref(),
        Ok("No such server.")
    );
    assert_eq!(
        d.command("set server be/blue state ready").await.as_deref(),
        Ok("")
    );

    // A backend without a green server.
    let only = ha.driver("only_blue");
    let e = only
        .switch(Colour::Green, Some(Colour::Blue))
        .await
        .unwrap_err();
    assert!(e.contains("No such server."), "{e}");
    assert!(e.contains("has no server green"), "{e}");
    assert_eq!(only.live().await, Ok(Some(Colour::Blue)));

    // A name that would smuggle a second command in.
    let e = ha.driver("be;shutdown").live().await.unwrap_err();
    assert!(e.contains("invalid HAProxy backend name"), "{e}");
    assert!(d
        .command("help\nshow info")
        .await
        .unwrap_err()
        .contains("one line"));
    ha.stop().await;
}

#[tokio::test]
async fn missing_socket_and_silent_peer_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ha.sock");
    let d = HaproxyDriver::new(Socket::Unix(path.clone()), "be");
    let want = format!(
        "HAProxy admin socket {}: No such file or directory",
        path.display()
    );
    assert_eq!(d.command("show info").await, Err(want.clone()));
    assert_eq!(d.live().await, Err(want.clone()));
    assert_eq!(d.servers_state().await, Err(want.clone()));
    assert_eq!(d.switch(Colour::Green, Some(Colour::Blue)).await, Err(want));

    let port = free_port();
    let tcp = HaproxyDriver::new(Socket::parse(&format!("127.0.0.1:{port}")), "be");
    assert_eq!(
        tcp.live().await,
        Err(format!(
            "HAProxy admin socket 127.0.0.1:{port}: Connection refused"
        ))
    );

    // A peer that accepts and never answers.
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let held = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let slow = HaproxyDriver {
        timeout: Duration::from_millis(200),
        ..d.clone()
    };
    let e = slow.live().await.unwrap_err();
    assert_eq!(
        e,
        format!(
            "HAProxy admin socket {}: no answer to `show servers state be` within 200ms",
            path.display()
        )
    );
    held.abort();
}
