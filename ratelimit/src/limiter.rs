//! ShouldRateLimit: each descriptor of a request is matched to its rule, charged with its hits
//! (`hits_addend`; 0 checks without counting) in its UTC window's counter in Redis, and answered
//! with the limit, what remains and when the window resets.

use crate::config::{Action, Config, RateLimit, Rule};
use crate::counters::{counter_key, Charge, RedisCounters};
use crate::proto::{self, Code, DescriptorStatus, RateLimitRequest, RateLimitResponse};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Limiter {
    config: Config,
    counters: Arc<RedisCounters>,
    /// Whether the last storage call failed, so that an outage is logged once, not per request.
    storage_down: AtomicBool,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum Refusal {
    /// The request itself is malformed (envoyproxy/ratelimit refuses the same).
    Invalid(&'static str),
    /// Redis could not be read or written: Envoy's `failure_mode_deny` decides.
    Storage,
}

/// A descriptor's counter value after its hits, against its limit.
struct Measured<'a> {
    limit: &'a RateLimit,
    shadow_mode: bool,
    value: u64,
}

impl Limiter {
    pub fn new(config: Config, counters: Arc<RedisCounters>) -> Self {
        Limiter { config, counters, storage_down: AtomicBool::new(false) }
    }

    pub async fn should_rate_limit(&self, req: &RateLimitRequest) -> Result<RateLimitResponse, Refusal> {
        if req.domain.is_empty() {
            return Err(Refusal::Invalid("rate limit domain must not be empty"));
        }
        if req.descriptors.is_empty() {
            return Err(Refusal::Invalid("rate limit descriptor list must not be empty"));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let result = self.measure_all(req, now).await;
        match result {
            Ok(measured) => {
                if self.storage_down.swap(false, Ordering::Relaxed) {
                    eprintln!("gateway-ratelimit: redis reachable again");
                }
                let response = answer(&measured, now);
                if let Some(line) = over_limit_line(&req.domain, req, &measured, &response) {
                    eprintln!("{line}");
                }
                Ok(response)
            }
            Err(e) => {
                if !self.storage_down.swap(true, Ordering::Relaxed) {
                    eprintln!("gateway-ratelimit: redis unavailable, answering errors: {:?}", e.kind());
                }
                Err(Refusal::Storage)
            }
        }
    }

    /// Charges every descriptor that has a limit (over-limit hits are counted too, as
    /// envoyproxy/ratelimit counts them: a stream-end charge that crosses the budget must stick)
    /// and returns each one's counter value after its hits.
    async fn measure_all<'a>(
        &'a self,
        req: &RateLimitRequest,
        now: u64,
    ) -> Result<Vec<Option<Measured<'a>>>, redis::RedisError> {
        let mut charges = Vec::new();
        let mut limited = Vec::with_capacity(req.descriptors.len());
        for d in &req.descriptors {
            let entries: Vec<(&str, &str)> =
                d.entries.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
            match self.config.rule(&req.domain, &entries) {
                Some(Rule { action: Action::Limit(limit), shadow_mode }) => {
                    let start = limit.unit.window_start(now);
                    charges.push(Charge {
                        key: counter_key(&req.domain, &entries, start),
                        hits: d.hits_addend.unwrap_or(u64::from(req.hits_addend.max(1))),
                        expires_at: start + limit.unit.seconds(),
                    });
                    limited.push(Some((limit, *shadow_mode)));
                }
                Some(Rule { action: Action::Unlimited, .. }) | None => limited.push(None),
            }
        }
        let mut values = self.counters.charge(&charges).await?.into_iter();
        Ok(limited
            .into_iter()
            .map(|l| {
                l.map(|(limit, shadow_mode)| Measured {
                    limit,
                    shadow_mode,
                    value: values.next().unwrap_or_default(),
                })
            })
            .collect())
    }
}

/// The RLS answer: per descriptor, OVER_LIMIT once its counter exceeds the limit (OK, with the
/// limit, in shadow mode), and overall OVER_LIMIT if any descriptor is.
fn answer(measured: &[Option<Measured<'_>>], now: u64) -> RateLimitResponse {
    let mut overall = Code::Ok;
    let statuses = measured
        .iter()
        .map(|m| match m {
            None => DescriptorStatus { code: Code::Ok as i32, ..DescriptorStatus::default() },
            Some(m) => {
                let max = u64::from(m.limit.requests_per_unit);
                let over = m.value > max;
                if over && !m.shadow_mode {
                    overall = Code::OverLimit;
                }
                DescriptorStatus {
                    code: if over && !m.shadow_mode { Code::OverLimit } else { Code::Ok } as i32,
                    current_limit: Some(proto::RateLimit {
                        name: m.limit.name.clone(),
                        requests_per_unit: m.limit.requests_per_unit,
                        unit: m.limit.unit as i32,
                    }),
                    limit_remaining: u32::try_from(max.saturating_sub(m.value)).unwrap_or(u32::MAX),
                    duration_until_reset: Some(prost_types::Duration {
                        seconds: i64::try_from(m.limit.unit.until_reset(now)).unwrap_or(i64::MAX),
                        nanos: 0,
                    }),
                }
            }
        })
        .collect();
    RateLimitResponse { overall_code: overall as i32, statuses }
}

/// One log line for an answer with a descriptor over its limit (shadow mode included): the domain,
/// each such descriptor's keys with a fingerprint of each value (values are user ids and group
/// names: `printf %s VALUE | sha256sum | cut -c1-12` finds them), and the limit.
fn over_limit_line(
    domain: &str,
    req: &RateLimitRequest,
    measured: &[Option<Measured<'_>>],
    response: &RateLimitResponse,
) -> Option<String> {
    let mut line = String::new();
    for (d, m) in req.descriptors.iter().zip(measured) {
        let Some(m) = m else { continue };
        if m.value <= u64::from(m.limit.requests_per_unit) {
            continue;
        }
        line.push_str(if line.is_empty() { " descriptor=" } else { "; descriptor=" });
        for (i, e) in d.entries.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(line, "{sep}{}=sha256:{}", e.key, fingerprint(&e.value));
        }
        let _ = write!(
            line,
            " limit={}/{}{}{}",
            m.limit.requests_per_unit,
            m.limit.unit.name(),
            if m.limit.name.is_empty() { String::new() } else { format!(" name={:?}", m.limit.name) },
            if m.shadow_mode { " shadow_mode" } else { "" },
        );
    }
    if line.is_empty() {
        return None;
    }
    let code = if response.overall_code == Code::OverLimit as i32 { "OVER_LIMIT" } else { "OK" };
    Some(format!("gateway-ratelimit: over limit: domain={domain} answer={code}{line}"))
}

fn fingerprint(value: &str) -> String {
    Sha256::digest(value.as_bytes()).iter().take(6).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Entry, RateLimitDescriptor};
    use crate::window::Unit;

    const NOW: u64 = 1_796_297_718; // 2026-12-03T11:35:18Z

    fn rate(n: u32, unit: Unit) -> RateLimit {
        RateLimit { requests_per_unit: n, unit, name: String::new() }
    }

    #[test]
    fn answer_per_descriptor() {
        let day = rate(100, Unit::Day);
        let minute = RateLimit { name: "rpm".into(), ..rate(5, Unit::Minute) };
        let measured = vec![
            Some(Measured { limit: &day, shadow_mode: false, value: 100 }),
            None,
            Some(Measured { limit: &minute, shadow_mode: false, value: 6 }),
        ];
        let r = answer(&measured, NOW);
        assert_eq!(r.overall_code, Code::OverLimit as i32);
        let s = &r.statuses;
        assert_eq!(s.len(), 3);
        // Exactly at the limit is still OK, with nothing remaining.
        assert_eq!(s[0].code, Code::Ok as i32);
        assert_eq!(s[0].limit_remaining, 0);
        assert_eq!(
            s[0].current_limit,
            Some(proto::RateLimit { name: String::new(), requests_per_unit: 100, unit: 4 })
        );
        assert_eq!(s[0].duration_until_reset.as_ref().unwrap().seconds, 86_400 - (11 * 3600 + 35 * 60 + 18));
        assert_eq!(s[1], DescriptorStatus { code: Code::Ok as i32, ..DescriptorStatus::default() });
        assert_eq!(s[2].code, Code::OverLimit as i32);
        assert_eq!(s[2].limit_remaining, 0);
        assert_eq!(s[2].current_limit.as_ref().unwrap().name, "rpm");
        assert_eq!(s[2].duration_until_reset.as_ref().unwrap().seconds, 42);
    }

    #[test]
    fn shadow_mode_answers_ok() {
        let day = rate(10, Unit::Day);
        let measured = vec![Some(Measured { limit: &day, shadow_mode: true, value: 11 })];
        let r = answer(&measured, NOW);
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(r.statuses[0].code, Code::Ok as i32);
        assert_eq!(r.statuses[0].limit_remaining, 0);
    }

    #[test]
    fn under_limit_reports_what_remains() {
        let hour = rate(10, Unit::Hour);
        let r = answer(&[Some(Measured { limit: &hour, shadow_mode: false, value: 3 })], NOW);
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(r.statuses[0].limit_remaining, 7);
        assert_eq!(r.statuses[0].duration_until_reset.as_ref().unwrap().seconds, 60 * 60 - (35 * 60 + 18));
    }

    fn request(entries: &[(&str, &str)]) -> RateLimitRequest {
        RateLimitRequest {
            domain: "budgets".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: entries
                    .iter()
                    .map(|(k, v)| Entry { key: (*k).into(), value: (*v).into() })
                    .collect(),
                hits_addend: None,
            }],
            hits_addend: 0,
        }
    }

    #[test]
    fn log_line_names_keys_and_limit_never_values() {
        let day = RateLimit { name: "daily".into(), ..rate(10, Unit::Day) };
        let req = request(&[("budget_group", "research"), ("user_id", "alice@example.com")]);
        let measured = vec![Some(Measured { limit: &day, shadow_mode: false, value: 12 })];
        let line = over_limit_line("budgets", &req, &measured, &answer(&measured, NOW)).unwrap();
        assert_eq!(
            line,
            format!(
                "gateway-ratelimit: over limit: domain=budgets answer=OVER_LIMIT descriptor=budget_group=sha256:{},user_id=sha256:{} limit=10/day name=\"daily\"",
                fingerprint("research"),
                fingerprint("alice@example.com")
            )
        );
        assert!(!line.contains("alice") && !line.contains("research"));
        // sha256("alice@example.com") starts ff8d9819fc0e.
        assert_eq!(fingerprint("alice@example.com"), "ff8d9819fc0e");
    }

    #[test]
    fn log_line_for_shadow_mode_and_none_under_limit() {
        let day = rate(10, Unit::Day);
        let req = request(&[("user_id", "u")]);
        let shadow = vec![Some(Measured { limit: &day, shadow_mode: true, value: 11 })];
        let line = over_limit_line("budgets", &req, &shadow, &answer(&shadow, NOW)).unwrap();
        assert!(line.contains("answer=OK") && line.ends_with("limit=10/day shadow_mode"), "{line}");
        let under = vec![Some(Measured { limit: &day, shadow_mode: false, value: 10 })];
        assert_eq!(over_limit_line("budgets", &req, &under, &answer(&under, NOW)), None);
    }
}
