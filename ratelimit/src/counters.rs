//! The counters in Redis, with envoyproxy/ratelimit's layout: one integer key per descriptor values
//! and UTC window, `<domain>_<key1>_<value1>_<key2>_<value2>_..._<window start>`, expiring when its
//! window ends. One request's counters are read and charged in one pipelined round trip. The
//! connection is made on first use and remade after Redis restarts, so the service starts, and
//! answers errors, while Redis is down.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Envoy's rate-limit filter waits 20 ms by default (100 ms in envoy/examples/budgets.yaml); a
/// dead Redis must not hold an answer much longer than that either.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// The counter key of a descriptor's values in the window starting at `window_start`.
pub fn counter_key(domain: &str, entries: &[(&str, &str)], window_start: u64) -> String {
    let mut key = format!("{domain}_");
    for (k, v) in entries {
        key.push_str(k);
        key.push('_');
        key.push_str(v);
        key.push('_');
    }
    key.push_str(&window_start.to_string());
    key
}

/// One counter of a request: add `hits` (0: only read it), expiring at `expires_at` (Unix seconds).
pub struct Charge {
    pub key: String,
    pub hits: u64,
    pub expires_at: u64,
}

pub struct RedisCounters {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl RedisCounters {
    /// Checks the URL only; nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(RedisCounters { client: redis::Client::open(url)?, conn: OnceCell::new() })
    }

    /// Applies `charges` and returns each counter's value after them (0 for a counter that does
    /// not exist), in order.
    pub async fn charge(&self, charges: &[Charge]) -> Result<Vec<u64>, redis::RedisError> {
        if charges.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(REDIS_TIMEOUT)
                    .set_response_timeout(REDIS_TIMEOUT)
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?
            .clone();
        let mut pipe = redis::pipe();
        for c in charges {
            if c.hits == 0 {
                pipe.get(&c.key);
            } else {
                pipe.incr(&c.key, c.hits).cmd("EXPIREAT").arg(&c.key).arg(c.expires_at).ignore();
            }
        }
        let values: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::counter_key;

    #[test]
    fn keys_are_envoyproxy_ratelimit_keys() {
        assert_eq!(
            counter_key("budgets", &[("tokens_user", "alice")], 1_796_256_000),
            "budgets_tokens_user_alice_1796256000"
        );
        assert_eq!(
            counter_key("budgets", &[("budget_group", "eng"), ("user_id", "bob")], 3600),
            "budgets_budget_group_eng_user_id_bob_3600"
        );
    }
}
