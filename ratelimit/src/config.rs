//! envoyproxy/ratelimit's YAML configuration (one `domain` per file, nested `descriptors`) read into
//! a tree of rules, and the lookup that finds the rule for one request descriptor with the same
//! semantics: at each level `key_value` first, then a wildcard value (`*`), then the bare `key`
//! (one counter per value); a rule applies only to a descriptor whose last entry reaches it.

use crate::window::Unit;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;

/// The fields envoyproxy/ratelimit accepts. Those it has and this service does not implement
/// (`replaces`, `quota_mode`, `share_threshold`, `metadata`) are read so that using them is a clear
/// error instead of a silently different limit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlRoot {
    domain: Option<String>,
    #[serde(default)]
    descriptors: Vec<YamlDescriptor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlDescriptor {
    key: Option<String>,
    value: Option<String>,
    rate_limit: Option<YamlRateLimit>,
    #[serde(default)]
    descriptors: Vec<YamlDescriptor>,
    #[serde(default)]
    shadow_mode: bool,
    // Statistics naming only in envoyproxy/ratelimit; this service keeps no statistics.
    #[serde(default, rename = "detailed_metric")]
    _detailed_metric: bool,
    #[serde(default, rename = "value_to_metric")]
    _value_to_metric: bool,
    #[serde(default)]
    quota_mode: bool,
    #[serde(default)]
    share_threshold: bool,
    metadata: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlRateLimit {
    unit: Option<String>,
    requests_per_unit: Option<u32>,
    #[serde(default)]
    unlimited: bool,
    name: Option<String>,
    replaces: Option<serde_yaml::Value>,
}

/// A limit as configured: `requests_per_unit` per UTC-aligned `unit` window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_per_unit: u32,
    pub unit: Unit,
    pub name: String,
}

/// What a matched rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Limit(RateLimit),
    /// `unlimited: true`: answered OK, nothing counted.
    Unlimited,
}

/// A rule reached by a descriptor: its action, and whether it only reports (`shadow_mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub shadow_mode: bool,
}

#[derive(Debug, Default)]
struct Node {
    rule: Option<Rule>,
    /// Children by `key` or `key_value`, as envoyproxy/ratelimit names them.
    children: HashMap<String, Node>,
    /// Children whose value has a `*`: the `key_value` pattern split on `*`, in file order.
    wildcards: Vec<(String, Vec<String>)>,
}

/// Every domain's rules.
#[derive(Debug, Default)]
pub struct Config {
    domains: HashMap<String, Node>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(source: &str, msg: impl fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError(format!("{source}: {msg}")))
}

impl Config {
    /// Adds one file's domain; `source` names the file in errors. A domain defined twice is refused
    /// (envoyproxy/ratelimit's default, without MERGE_DOMAIN_CONFIG).
    pub fn add_yaml(&mut self, source: &str, text: &str) -> Result<(), ConfigError> {
        let root: YamlRoot = match serde_yaml::from_str(text) {
            Ok(root) => root,
            Err(e) => return err(source, e),
        };
        let domain = match root.domain {
            Some(d) if !d.is_empty() => d,
            _ => return err(source, "config file cannot have empty domain"),
        };
        if self.domains.contains_key(&domain) {
            return err(source, format!("duplicate domain '{domain}'"));
        }
        let mut node = Node::default();
        load(source, &mut node, &[], root.descriptors)?;
        self.domains.insert(domain, node);
        Ok(())
    }

    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }

    /// The rule for one request descriptor (its `(key, value)` entries), or `None`: unknown domain,
    /// no match, or a match whose depth differs from the descriptor's (all answered OK, not counted).
    pub fn rule(&self, domain: &str, entries: &[(&str, &str)]) -> Option<&Rule> {
        let mut node = self.domains.get(domain)?;
        let mut found = None;
        for (i, (key, value)) in entries.iter().enumerate() {
            let full = format!("{key}_{value}");
            let next = node
                .children
                .get(&full)
                .or_else(|| {
                    node.wildcards
                        .iter()
                        .find(|(_, parts)| wildcard_match(parts, &full))
                        .and_then(|(pattern, _)| node.children.get(pattern))
                })
                .or_else(|| node.children.get(*key))?;
            if i + 1 == entries.len() {
                found = next.rule.as_ref();
            }
            node = next;
        }
        found
    }
}

fn load(
    source: &str,
    parent: &mut Node,
    path: &[String],
    descriptors: Vec<YamlDescriptor>,
) -> Result<(), ConfigError> {
    for d in descriptors {
        let key = match d.key {
            Some(k) if !k.is_empty() => k,
            _ => return err(source, "descriptor has empty key"),
        };
        if key.chars().any(char::is_control) {
            return err(source, format!("descriptor key {key:?} has a control character"));
        }
        let value = d.value.unwrap_or_default();
        let full = if value.is_empty() { key.clone() } else { format!("{key}_{value}") };
        let mut keys = path.to_vec();
        keys.push(key.clone());
        let where_ = format!("descriptor '{}'", keys.join("."));
        if parent.children.contains_key(&full) {
            return err(source, format!("duplicate descriptor composite key '{full}' at {where_}"));
        }
        if d.quota_mode || d.share_threshold || d.metadata.is_some() {
            return err(
                source,
                format!("{where_}: quota_mode, share_threshold and metadata are not supported"),
            );
        }
        let rule = match d.rate_limit {
            None => None,
            Some(rl) => {
                if rl.replaces.is_some() {
                    return err(source, format!("{where_}: replaces is not supported"));
                }
                let unit = rl.unit.filter(|u| !u.is_empty());
                let action = if rl.unlimited {
                    if unit.is_some() {
                        return err(
                            source,
                            format!("{where_}: should not specify rate limit unit when unlimited"),
                        );
                    }
                    Action::Unlimited
                } else {
                    let unit = match unit.as_deref().and_then(Unit::parse) {
                        Some(u) => u,
                        None => {
                            return err(
                                source,
                                format!("{where_}: invalid rate limit unit '{}'", unit.unwrap_or_default()),
                            )
                        }
                    };
                    Action::Limit(RateLimit {
                        requests_per_unit: rl.requests_per_unit.unwrap_or(0),
                        unit,
                        name: rl.name.unwrap_or_default(),
                    })
                };
                Some(Rule { action, shadow_mode: d.shadow_mode })
            }
        };
        let mut node = Node { rule, ..Node::default() };
        load(source, &mut node, &keys, d.descriptors)?;
        if full.contains('*') {
            parent.wildcards.push((full.clone(), full.split('*').map(str::to_owned).collect()));
        }
        parent.children.insert(full, node);
    }
    Ok(())
}

/// Whether `value` matches a `key_value` pattern split on `*` (each `*` matches zero or more
/// characters), as envoyproxy/ratelimit matches wildcard values.
fn wildcard_match(parts: &[String], value: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return first == value;
    }
    let fixed: usize = parts.iter().map(String::len).sum();
    if value.len() < fixed || !value.starts_with(first.as_str()) || !value.ends_with(last.as_str()) {
        return false;
    }
    let Some(mut rest) = value.get(first.len()..value.len() - last.len()) else {
        return false;
    };
    for part in parts.iter().skip(1).take(parts.len() - 2) {
        match rest.find(part.as_str()) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let mut c = Config::default();
        c.add_yaml("test.yaml", yaml).unwrap();
        c
    }

    fn error(yaml: &str) -> String {
        Config::default().add_yaml("test.yaml", yaml).unwrap_err().0
    }

    fn limit(rule: Option<&Rule>) -> (u32, Unit, bool) {
        match rule {
            Some(Rule { action: Action::Limit(l), shadow_mode, .. }) => {
                (l.requests_per_unit, l.unit, *shadow_mode)
            }
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    const BUDGETS: &str = r#"
domain: budgets
descriptors:
  - key: user_id
    rate_limit: {unit: day, requests_per_unit: 1000}
  - key: user_id
    value: ceo
    rate_limit: {unit: day, requests_per_unit: 5000, name: ceo budget}
  - key: budget_group
    descriptors:
      - key: user_id
        rate_limit: {unit: minute, requests_per_unit: 10}
  - key: budget_group
    value: research
    rate_limit: {unit: hour, requests_per_unit: 200}
  - key: path
    value: /v1/*
    rate_limit: {unit: second, requests_per_unit: 3}
  - key: model
    value: claude-*-opus-*
    rate_limit: {unit: week, requests_per_unit: 7}
  - key: team
    value: "*"
    shadow_mode: true
    rate_limit: {unit: month, requests_per_unit: 30}
  - key: internal
    rate_limit: {unlimited: true}
"#;

    #[test]
    fn key_without_value_matches_every_value() {
        let c = config(BUDGETS);
        assert_eq!(limit(c.rule("budgets", &[("user_id", "alice")])), (1000, Unit::Day, false));
        assert_eq!(limit(c.rule("budgets", &[("user_id", "bob")])), (1000, Unit::Day, false));
    }

    #[test]
    fn key_with_value_wins_over_key_alone() {
        let c = config(BUDGETS);
        let rule = c.rule("budgets", &[("user_id", "ceo")]).unwrap();
        assert_eq!(limit(Some(rule)), (5000, Unit::Day, false));
        let Action::Limit(limit) = &rule.action else { panic!("{rule:?}") };
        assert_eq!(limit, &RateLimit { requests_per_unit: 5000, unit: Unit::Day, name: "ceo budget".into() });
    }

    #[test]
    fn nested_descriptors_need_the_full_depth() {
        let c = config(BUDGETS);
        let rule = c.rule("budgets", &[("budget_group", "eng"), ("user_id", "alice")]).unwrap();
        assert_eq!(limit(Some(rule)), (10, Unit::Minute, false));
        // The parent alone has no limit; a deeper or other descriptor matches nothing.
        assert_eq!(c.rule("budgets", &[("budget_group", "eng")]), None);
        assert_eq!(c.rule("budgets", &[("budget_group", "eng"), ("user_id", "a"), ("x", "y")]), None);
        assert_eq!(c.rule("budgets", &[("budget_group", "eng"), ("model", "a")]), None);
        // A value-specific parent without children ends the walk: its limit needs depth 1.
        assert_eq!(limit(c.rule("budgets", &[("budget_group", "research")])), (200, Unit::Hour, false));
        assert_eq!(c.rule("budgets", &[("budget_group", "research"), ("user_id", "a")]), None);
    }

    #[test]
    fn wildcard_values() {
        let c = config(BUDGETS);
        assert_eq!(limit(c.rule("budgets", &[("path", "/v1/messages")])), (3, Unit::Second, false));
        assert_eq!(limit(c.rule("budgets", &[("path", "/v1/")])), (3, Unit::Second, false));
        assert_eq!(c.rule("budgets", &[("path", "/v2/messages")]), None);
        assert_eq!(limit(c.rule("budgets", &[("model", "claude-4-opus-1")])), (7, Unit::Week, false));
        assert_eq!(c.rule("budgets", &[("model", "claude-4-sonnet-1")]), None);
        assert_eq!(c.rule("budgets", &[("model", "claude--opus")]), None);
    }

    #[test]
    fn shadow_mode_and_unlimited() {
        let c = config(BUDGETS);
        assert_eq!(limit(c.rule("budgets", &[("team", "anything")])), (30, Unit::Month, true));
        assert_eq!(c.rule("budgets", &[("internal", "x")]).unwrap().action, Action::Unlimited);
    }

    #[test]
    fn unknown_domain_or_key_matches_nothing() {
        let c = config(BUDGETS);
        assert_eq!(c.rule("other", &[("user_id", "alice")]), None);
        assert_eq!(c.rule("budgets", &[("nope", "alice")]), None);
        assert_eq!(c.rule("budgets", &[]), None);
    }

    #[test]
    fn every_unit() {
        for (name, unit) in [
            ("second", Unit::Second),
            ("minute", Unit::Minute),
            ("hour", Unit::Hour),
            ("day", Unit::Day),
            ("week", Unit::Week),
            ("month", Unit::Month),
            ("year", Unit::Year),
            ("DAY", Unit::Day),
        ] {
            let c = config(&format!(
                "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {{unit: {name}, requests_per_unit: 5}}\n"
            ));
            assert_eq!(limit(c.rule("d", &[("k", "v")])), (5, unit, false), "{name}");
        }
    }

    #[test]
    fn refused_configs() {
        let cases: &[(&str, &str)] = &[
            ("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n",
             "invalid rate limit unit 'fortnight'"),
            ("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: unknown, requests_per_unit: 1}\n",
             "invalid rate limit unit 'unknown'"),
            ("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {requests_per_unit: 1}\n",
             "invalid rate limit unit ''"),
            ("domain: d\ndescriptors:\n  - key: k\n  - key: k\n", "duplicate descriptor composite key 'k'"),
            ("domain: d\ndescriptors:\n  - key: k\n    value: v\n  - key: k\n    value: v\n",
             "duplicate descriptor composite key 'k_v'"),
            ("domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n      - key: b\n",
             "duplicate descriptor composite key 'b' at descriptor 'a.b'"),
            ("descriptors: []\n", "config file cannot have empty domain"),
            ("domain: ''\n", "config file cannot have empty domain"),
            ("domain: d\ndescriptors:\n  - value: v\n", "descriptor has empty key"),
            ("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: day, requests_per_unit: 1, bogus: 1}\n",
             "unknown field `bogus`"),
            ("domain: d\nextra: 1\n", "unknown field `extra`"),
            ("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, unit: day}\n",
             "should not specify rate limit unit when unlimited"),
            ("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: day, requests_per_unit: -1}\n",
             "expected u32"),
            ("domain: d\ndescriptors:\n  - key: k\n    quota_mode: true\n", "not supported"),
            ("domain: d\ndescriptors:\n  - key: k\n    value: a*\n    share_threshold: true\n", "not supported"),
            ("domain: d\ndescriptors:\n  - key: k\n    metadata: {a: 1}\n", "not supported"),
            ("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: day, requests_per_unit: 1, replaces: [{name: x}]}\n",
             "replaces is not supported"),
            ("domain: d\ndescriptors:\n  - key: \"a\\nb\"\n", "control character"),
            ("domain: [\n", "test.yaml"),
        ];
        for (yaml, want) in cases {
            let got = error(yaml);
            assert!(got.contains(want), "{yaml}: {got}");
            assert!(got.starts_with("test.yaml: "), "{got}");
        }
    }

    #[test]
    fn duplicate_domain_refused_across_files() {
        let mut c = Config::default();
        c.add_yaml("a.yaml", "domain: d\n").unwrap();
        assert_eq!(c.add_yaml("b.yaml", "domain: d\n").unwrap_err().0, "b.yaml: duplicate domain 'd'");
        c.add_yaml("c.yaml", "domain: e\n").unwrap();
        let mut domains: Vec<_> = c.domains().collect();
        domains.sort();
        assert_eq!(domains, ["d", "e"]);
    }

    #[test]
    fn detailed_metric_and_value_to_metric_are_accepted() {
        let c = config(
            "domain: d\ndescriptors:\n  - key: k\n    detailed_metric: true\n    value_to_metric: true\n    rate_limit: {unit: hour, requests_per_unit: 2}\n",
        );
        assert_eq!(limit(c.rule("d", &[("k", "v")])), (2, Unit::Hour, false));
    }

    #[test]
    fn shipped_budgets_config_loads() {
        let c = config(include_str!("../config/budgets.yaml"));
        assert_eq!(limit(c.rule("budgets", &[("tokens_user", "alice")])), (2_000_000, Unit::Day, false));
        assert_eq!(limit(c.rule("budgets", &[("tokens_group", "eng")])), (20_000_000, Unit::Day, false));
        assert_eq!(
            limit(c.rule("budgets", &[("tokens_group", "research")])),
            (100_000_000, Unit::Day, false)
        );
        assert_eq!(limit(c.rule("budgets", &[("requests_user", "alice")])), (60, Unit::Minute, false));
    }

    #[test]
    fn wildcard_match_shapes() {
        let p = |s: &str| s.split('*').map(str::to_owned).collect::<Vec<_>>();
        assert!(wildcard_match(&p("k_a*"), "k_abc"));
        assert!(wildcard_match(&p("k_a*"), "k_a"));
        assert!(!wildcard_match(&p("k_a*"), "k_b"));
        assert!(wildcard_match(&p("k_a*b*c"), "k_aXbYc"));
        assert!(wildcard_match(&p("k_a*b*c"), "k_abc"));
        assert!(!wildcard_match(&p("k_a*b*c"), "k_ac"));
        assert!(!wildcard_match(&p("k_ab*ba"), "k_aba"));
        assert!(wildcard_match(&p("k_x"), "k_x"));
    }
}
