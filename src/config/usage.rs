//! `usage`, `budget_groups` and `default_budget_group`: the usage record and its budget group.

use serde_json::Value;

use super::reader::{error, strings, unique, Obj, Result};
use crate::budget::BudgetGroup;
use crate::usage::CostWeights;

/// Budget group names travel in a header and a metric name: short, printable.
const MAX_GROUP_BYTES: usize = 256;
/// A weight above a million per token is a typo (prices per million tokens pasted as weights).
const MAX_WEIGHT: f64 = 1_000_000.0;

#[derive(Debug)]
pub struct Usage {
    pub enabled: bool,
    pub cost_weights: CostWeights,
    pub strip_accept_encoding: bool,
}

impl Default for Usage {
    fn default() -> Self {
        Usage { enabled: true, cost_weights: CostWeights::default(), strip_accept_encoding: true }
    }
}

#[derive(Debug)]
pub struct Budgets {
    /// In the configured order: the first one a user is in is theirs.
    pub groups: Vec<BudgetGroup>,
    pub default_group: String,
}

impl Budgets {
    /// The name of the group `budget::choose` picked.
    pub fn name(&self, chosen: Option<usize>) -> &str {
        chosen.and_then(|i| self.groups.get(i)).map_or(self.default_group.as_str(), |g| g.name.as_str())
    }
}

pub fn parse_usage(value: Option<&Value>) -> Result<Usage> {
    let Some(value) = value else { return Ok(Usage::default()) };
    let obj = Obj::new(value, "usage".into())?;
    obj.only(&["enabled", "cost_weights", "strip_accept_encoding"])?;
    Ok(Usage {
        enabled: obj.bool_or("enabled", true)?,
        cost_weights: parse_weights(obj.get("cost_weights"), &obj.child("cost_weights"))?,
        strip_accept_encoding: obj.bool_or("strip_accept_encoding", true)?,
    })
}

/// Absent weights keep their defaults.
fn parse_weights(value: Option<&Value>, path: &str) -> Result<CostWeights> {
    let mut weights = CostWeights::default();
    let Some(value) = value else { return Ok(weights) };
    let obj = Obj::new(value, path.to_owned())?;
    obj.only(&["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"])?;
    for (key, slot) in [
        ("input_tokens", &mut weights.input),
        ("output_tokens", &mut weights.output),
        ("cache_creation_input_tokens", &mut weights.cache_creation),
        ("cache_read_input_tokens", &mut weights.cache_read),
    ] {
        if let Some(v) = obj.get(key) {
            *slot = thousandths(v).ok_or_else(|| {
                error(
                    &obj.child(key),
                    "must be a non-negative number with at most three decimals (up to 1000000)",
                )
            })?;
        }
    }
    Ok(weights)
}

/// A weight in thousandths, if it is a non-negative number with at most three decimals. JSON
/// numbers arrive as f64 (0.001 × 1000 is 1 within rounding); Envoy hands a YAML `1.25` in a
/// `Struct` over as the string "1.25", which is read exactly.
fn thousandths(value: &Value) -> Option<u64> {
    let milli = match value {
        Value::String(text) => decimal_thousandths(text)?,
        _ => {
            let weight = value.as_f64()?;
            if !(0.0..=MAX_WEIGHT).contains(&weight) {
                return None;
            }
            let milli = weight * 1000.0;
            let rounded = milli.round();
            if (milli - rounded).abs() > 1e-6 * rounded.max(1.0) {
                return None;
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let milli = rounded as u64;
            milli
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let max = (MAX_WEIGHT * 1000.0) as u64;
    (milli <= max).then_some(milli)
}

/// `123`, `0.5`, `1.250`: digits, then at most three significant decimals.
fn decimal_thousandths(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 7
        || !digits(whole)
        || !digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 3 {
        return None;
    }
    let padded = format!("{fraction:0<3}");
    Some(whole.parse::<u64>().ok()? * 1000 + padded.parse::<u64>().ok()?)
}

pub fn parse_budgets(groups: Option<&Value>, default_group: Option<&Value>) -> Result<Budgets> {
    let names = match groups {
        None => Vec::new(),
        Some(v) => strings(v, "budget_groups")?,
    };
    for (i, name) in names.iter().enumerate() {
        check_group(name, &format!("budget_groups[{i}]"))?;
    }
    unique(names.iter().map(String::as_str), "budget_groups", "group")?;
    let default_group = match default_group {
        None => "default".to_owned(),
        Some(v) => super::reader::string(v, "default_budget_group")?,
    };
    check_group(&default_group, "default_budget_group")?;
    if names.contains(&default_group) {
        return Err(error("default_budget_group", "is also one of budget_groups"));
    }
    Ok(Budgets { groups: names.iter().map(|n| BudgetGroup::new(n)).collect(), default_group })
}

/// Printable ASCII without spaces or commas: the value goes into a header as is and names metrics.
fn check_group(name: &str, path: &str) -> Result<()> {
    let ok = name.len() <= MAX_GROUP_BYTES && name.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if ok {
        Ok(())
    } else {
        Err(error(
            path,
            format!("must be at most {MAX_GROUP_BYTES} printable ASCII characters without spaces or commas"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weights_in_thousandths() {
        assert_eq!(thousandths(&json!(1)), Some(1000));
        assert_eq!(thousandths(&json!(0.001)), Some(1));
        assert_eq!(thousandths(&json!(0.3)), Some(300));
        assert_eq!(thousandths(&json!(3.75)), Some(3750));
        assert_eq!(thousandths(&json!(1000000)), Some(1_000_000_000));
        assert_eq!(thousandths(&json!(0)), Some(0));
        assert_eq!(thousandths(&json!(0.0005)), None);
        assert_eq!(thousandths(&json!(1.2345)), None);
        assert_eq!(thousandths(&json!(-1)), None);
        assert_eq!(thousandths(&json!(1e7)), None);
        assert_eq!(thousandths(&json!("1")), Some(1000));
        assert_eq!(thousandths(&json!("1.25")), Some(1250));
        assert_eq!(thousandths(&json!("0.001")), Some(1));
        assert_eq!(thousandths(&json!("2.5000")), Some(2500));
        assert_eq!(thousandths(&json!("1000000")), Some(1_000_000_000));
        for bad in ["1.2345", "-1", "1e3", ".5", "5.", "", "1,5", "0x10", "1000001", "12345678"] {
            assert_eq!(thousandths(&json!(bad)), None, "{bad}");
        }
    }
}
