//! End to end: a real `redis-server` and the real `gateway-ratelimit` binary on free 127.0.0.1
//! ports, driven over gRPC as Envoy drives it. Both are stopped by PID when a test ends, also when
//! it fails. A missing `redis-server` fails the tests (`make setup` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use gateway_ratelimit::proto::rate_limit_service_client::RateLimitServiceClient;
use gateway_ratelimit::proto::{Code, Entry, RateLimitDescriptor, RateLimitRequest, RateLimitResponse};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CONFIG: &str = r#"
domain: budgets
descriptors:
  - key: user_id
    rate_limit: {unit: day, requests_per_unit: 10, name: daily tokens}
  - key: rpm_user
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: per_second
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: budget_group
    descriptors:
      - key: user_id
        rate_limit: {unit: hour, requests_per_unit: 100}
  - key: shadow_user
    shadow_mode: true
    rate_limit: {unit: day, requests_per_unit: 1}
  - key: internal
    rate_limit: {unlimited: true}
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Waits, if needed, so that the next few seconds stay inside one window of `secs` seconds.
fn away_from_window_edge(secs: u64) {
    let left = secs - now() % secs;
    if secs > 1 && left < 4 {
        std::thread::sleep(Duration::from_secs(left + 1));
    }
}

struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_redis(port: u16, dir: &std::path::Path) -> Proc {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server could not be started ({e}): run `make setup`"));
    wait_for_port(port, "redis-server");
    Proc { child }
}

struct Setup {
    service: Option<Proc>,
    redis: Option<Proc>,
    redis_port: u16,
    port: u16,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = std::env::temp_dir().join(format!(
            "gateway-ratelimit-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("budgets.yaml"), CONFIG).unwrap();
        let redis_port = free_port();
        let redis = start_redis(redis_port, &dir);
        let mut setup = Setup { service: None, redis: Some(redis), redis_port, port: free_port(), dir };
        setup.start_service();
        setup
    }

    fn start_service(&mut self) {
        let log = std::fs::File::create(self.dir.join("service.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-ratelimit"));
        cmd.arg("--config")
            .arg(self.dir.join("budgets.yaml"))
            .args(["--redis", &format!("redis://127.0.0.1:{}", self.redis_port)])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)]);
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.service = Some(Proc { child });
        wait_for_port(self.port, "gateway-ratelimit");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("service.log")).unwrap()
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.redis_port))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    async fn client(&self) -> RateLimitServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect()
            .await
            .unwrap();
        RateLimitServiceClient::new(channel)
    }

    async fn ask(
        &self,
        descriptors: Vec<RateLimitDescriptor>,
        hits: u32,
    ) -> Result<RateLimitResponse, tonic::Status> {
        let req = RateLimitRequest { domain: "budgets".into(), descriptors, hits_addend: hits };
        self.client().await.should_rate_limit(req).await.map(tonic::Response::into_inner)
    }

    /// Every key in Redis (all counters) and its value.
    fn counters(&self) -> Vec<(String, i64)> {
        let mut conn = self.redis();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        let mut out: Vec<(String, i64)> = keys
            .into_iter()
            .map(|k| {
                let v: i64 = redis::cmd("GET").arg(&k).query(&mut conn).unwrap();
                (k, v)
            })
            .collect();
        out.sort();
        out
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.service.take();
        self.redis.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn desc(entries: &[(&str, &str)], hits: Option<u64>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries.iter().map(|(k, v)| Entry { key: (*k).into(), value: (*v).into() }).collect(),
        hits_addend: hits,
    }
}

fn codes(r: &RateLimitResponse) -> (i32, Vec<i32>) {
    (r.overall_code, r.statuses.iter().map(|s| s.code).collect())
}

const OK: i32 = Code::Ok as i32;
const OVER: i32 = Code::OverLimit as i32;

#[tokio::test(flavor = "multi_thread")]
async fn counts_per_value_and_refuses_over_the_limit() {
    away_from_window_edge(60);
    let s = Setup::new();
    let mut remaining = vec![];
    for _ in 0..3 {
        let r = s.ask(vec![desc(&[("rpm_user", "alice")], None)], 0).await.unwrap();
        assert_eq!(codes(&r), (OK, vec![OK]));
        remaining.push(r.statuses[0].limit_remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let r = s.ask(vec![desc(&[("rpm_user", "alice")], None)], 0).await.unwrap();
    assert_eq!(codes(&r), (OVER, vec![OVER]));
    let limit = r.statuses[0].current_limit.clone().unwrap();
    assert_eq!((limit.requests_per_unit, limit.unit), (3, 2));
    // Another value has its own counter; a request with both is over because of one.
    let r = s.ask(vec![desc(&[("rpm_user", "bob")], None)], 0).await.unwrap();
    assert_eq!((codes(&r), r.statuses[0].limit_remaining), ((OK, vec![OK]), 2));
    let r = s
        .ask(vec![desc(&[("rpm_user", "bob")], None), desc(&[("rpm_user", "alice")], None)], 0)
        .await
        .unwrap();
    assert_eq!(codes(&r), (OVER, vec![OK, OVER]));
    // Over-limit hits are counted, as envoyproxy/ratelimit counts them.
    let counters = s.counters();
    let value = |who: &str| counters.iter().find(|(k, _)| k.contains(&format!("_{who}_"))).unwrap().1;
    assert_eq!((value("alice"), value("bob")), (5, 2));
    // One log line per over-limit answer, with keys and limit but no value.
    let log = s.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("over limit")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("domain=budgets answer=OVER_LIMIT descriptor=rpm_user=sha256:"), "{log}");
    assert!(lines[0].ends_with("limit=3/minute"), "{log}");
    assert!(!log.contains("alice") && !log.contains("bob"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hits_addend_and_check_only() {
    away_from_window_edge(86_400);
    let s = Setup::new();
    let user = |hits| vec![desc(&[("user_id", "carol")], hits)];
    let r = s.ask(user(Some(4)), 0).await.unwrap();
    assert_eq!((codes(&r), r.statuses[0].limit_remaining), ((OK, vec![OK]), 6));
    // The request's hits_addend applies to descriptors without their own.
    let r = s.ask(user(None), 6).await.unwrap();
    assert_eq!((codes(&r), r.statuses[0].limit_remaining), ((OK, vec![OK]), 0));
    // 0 checks without counting: exactly at the limit is not over it.
    let r = s.ask(user(Some(0)), 0).await.unwrap();
    assert_eq!((codes(&r), r.statuses[0].limit_remaining), ((OK, vec![OK]), 0));
    assert_eq!(s.counters().iter().map(|c| c.1).collect::<Vec<_>>(), [10]);
    // A charge that crosses the budget is recorded, and later checks are refused.
    let r = s.ask(user(Some(7)), 0).await.unwrap();
    assert_eq!(codes(&r), (OVER, vec![OVER]));
    let r = s.ask(user(Some(0)), 0).await.unwrap();
    assert_eq!(codes(&r), (OVER, vec![OVER]));
    assert_eq!(s.counters().iter().map(|c| c.1).collect::<Vec<_>>(), [17]);
    // Check-only on a counter that does not exist creates nothing.
    let r = s.ask(vec![desc(&[("user_id", "dave")], Some(0))], 0).await.unwrap();
    assert_eq!((codes(&r), r.statuses[0].limit_remaining), ((OK, vec![OK]), 10));
    assert_eq!(s.counters().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn shadow_mode_logs_but_does_not_refuse() {
    let s = Setup::new();
    for _ in 0..3 {
        let r = s.ask(vec![desc(&[("shadow_user", "erin")], None)], 0).await.unwrap();
        assert_eq!(codes(&r), (OK, vec![OK]));
    }
    let log = s.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("over limit")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines.iter().all(|l| l.contains("answer=OK") && l.ends_with("limit=1/day shadow_mode")), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_and_unlimited_descriptors_are_ok_and_not_counted() {
    let s = Setup::new();
    let r = s
        .ask(
            vec![
                desc(&[("internal", "x")], None),
                desc(&[("nothing", "x")], None),
                desc(&[("budget_group", "eng")], None),
            ],
            0,
        )
        .await
        .unwrap();
    assert_eq!(codes(&r), (OK, vec![OK, OK, OK]));
    assert!(r.statuses.iter().all(|s| s.current_limit.is_none()));
    // An unknown domain matches nothing; the same descriptor in the known one is counted.
    let other = RateLimitRequest {
        domain: "other".into(),
        descriptors: vec![desc(&[("user_id", "x")], None)],
        hits_addend: 0,
    };
    let r = s.client().await.should_rate_limit(other).await.unwrap().into_inner();
    assert_eq!((codes(&r), r.statuses[0].current_limit.is_none()), ((OK, vec![OK]), true));
    assert_eq!(s.counters().len(), 0);
    let r = s.ask(vec![desc(&[("user_id", "x")], None)], 0).await.unwrap();
    assert_eq!(codes(&r), (OK, vec![OK]));
    assert_eq!(s.counters().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_requests_are_refused() {
    let s = Setup::new();
    let err = s.ask(vec![], 0).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = s
        .client()
        .await
        .should_rate_limit(RateLimitRequest {
            domain: String::new(),
            descriptors: vec![desc(&[("a", "b")], None)],
            hits_addend: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_are_utc_aligned_and_reset() {
    away_from_window_edge(3600);
    let s = Setup::new();
    let before = now();
    let r = s.ask(vec![desc(&[("budget_group", "eng"), ("user_id", "frank")], Some(30))], 0).await.unwrap();
    let after = now();
    let reset = r.statuses[0].duration_until_reset.unwrap().seconds as u64;
    assert!((3600 - after % 3600..=3600 - before % 3600).contains(&reset), "{reset}");
    assert_eq!(r.statuses[0].limit_remaining, 70);
    // envoyproxy/ratelimit's key: domain, each descriptor key and value, window start; it
    // expires when the window ends.
    let start = before - before % 3600;
    assert_eq!(s.counters(), [(format!("budgets_budget_group_eng_user_id_frank_{start}"), 30)]);
    let ttl: u64 = redis::cmd("TTL").arg(&s.counters()[0].0).query(&mut s.redis()).unwrap();
    assert!((3600 - now() % 3600 - 1..=3600 - before % 3600).contains(&ttl), "{ttl}");

    // A 1-second limit: refused within the second, allowed again in the next one.
    let per_second = || vec![desc(&[("per_second", "gina")], None)];
    // Both requests early in one second.
    let into_second = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1010 - into_second)));
    let first = s.ask(per_second(), 0).await.unwrap();
    let second = s.ask(per_second(), 0).await.unwrap();
    assert_eq!(codes(&first).0, OK);
    assert_eq!(codes(&second).0, OVER);
    assert_eq!(second.statuses[0].duration_until_reset.unwrap().seconds, 1);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(codes(&s.ask(per_second(), 0).await.unwrap()).0, OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_answers_errors_and_recovers_without_restart() {
    away_from_window_edge(86_400);
    let mut s = Setup::new();
    let user = || vec![desc(&[("user_id", "hank")], Some(1))];
    assert_eq!(codes(&s.ask(user(), 0).await.unwrap()).0, OK);

    s.redis.take(); // stopped
    let started = Instant::now();
    let err = s.ask(user(), 0).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(s.ask(user(), 0).await.unwrap_err().code(), tonic::Code::Unavailable);
    assert_eq!(health(s.port), "200", "health does not depend on Redis");

    // Restarted (empty: no persistence): the same service answers again.
    s.redis = Some(start_redis(s.redis_port, &s.dir));
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        match s.ask(user(), 0).await {
            Ok(r) => break r,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable);
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(codes(&r).0, OK);
    assert_eq!(s.counters().iter().map(|c| c.1).collect::<Vec<_>>(), [1]);
    let log = s.log();
    assert_eq!(log.matches("redis unavailable").count(), 1, "{log}");
    assert_eq!(log.matches("redis reachable again").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_while_redis_is_down() {
    let mut s = Setup::new();
    s.service.take();
    s.redis.take();
    s.start_service();
    assert_eq!(
        s.ask(vec![desc(&[("user_id", "ida")], None)], 0).await.unwrap_err().code(),
        tonic::Code::Unavailable
    );
    s.redis = Some(start_redis(s.redis_port, &s.dir));
    let r = s.ask(vec![desc(&[("user_id", "ida")], None)], 0).await.unwrap();
    assert_eq!(codes(&r).0, OK);
}

/// The status code of `GET /healthz` over HTTP/1.1.
fn health(port: u16) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with("ok\n") || !answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.split(' ').nth(1).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz() {
    let s = Setup::new();
    assert_eq!(health(s.port), "200");
}

#[test]
fn broken_config_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("gateway-ratelimit-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n",
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_gateway-ratelimit")).arg("--config").arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config refused") && stderr.contains("invalid rate limit unit 'fortnight'"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-ratelimit")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_promptly_with_envoy_style_open_connections() {
    let mut s = Setup::new();
    // An HTTP/2 connection kept open after an answer, as Envoy keeps it.
    let mut client = s.client().await;
    let req = RateLimitRequest {
        domain: "budgets".into(),
        descriptors: vec![desc(&[("user_id", "kim")], None)],
        hits_addend: 0,
    };
    client.should_rate_limit(req).await.unwrap();
    let mut service = s.service.take().unwrap();
    let pid = service.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(4);
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running 4 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    drop(client);
}
