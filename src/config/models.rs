//! `models`: the catalog, `serve_list` and `enforce` (contract: "Models").

use serde_json::Value;

use super::reader::{array, error, non_empty_strings, unique, Obj, Result};
use crate::models::{Entry, Models, MAX_MODEL_BYTES};

pub fn parse_models(value: Option<&Value>) -> Result<Models> {
    let Some(value) = value else { return Ok(Models::default()) };
    let obj = Obj::new(value, "models".into())?;
    obj.only(&["catalog", "serve_list", "enforce"])?;
    let catalog: Vec<Entry> = match obj.get("catalog") {
        None => Vec::new(),
        Some(v) => array(v, &obj.child("catalog"))?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_entry(v, format!("models.catalog[{i}]")))
            .collect::<Result<_>>()?,
    };
    unique(catalog.iter().map(|e| e.id.as_str()), "models.catalog", "id")?;
    let serve_list = obj.bool_or("serve_list", false)?;
    let enforce = obj.bool_or("enforce", false)?;
    if enforce && catalog.is_empty() {
        return Err(error(
            "models.enforce",
            "needs a non-empty models.catalog (every request would be refused)",
        ));
    }
    Ok(Models { catalog, serve_list, enforce })
}

fn parse_entry(value: &Value, path: String) -> Result<Entry> {
    let obj = Obj::new(value, path)?;
    obj.only(&["id", "display_name", "created_at", "groups"])?;
    let id = obj.required_str("id")?;
    if id.len() > MAX_MODEL_BYTES {
        return Err(error(&obj.child("id"), format!("must be at most {MAX_MODEL_BYTES} bytes")));
    }
    let display_name = obj.required_str("display_name")?;
    let created_at = obj.required_str("created_at")?;
    if !is_rfc3339(&created_at) {
        return Err(error(&obj.child("created_at"), "must be an RFC 3339 date-time (2025-05-14T00:00:00Z)"));
    }
    let groups = match obj.get("groups") {
        None => None,
        Some(v) => Some(non_empty_strings(v, &obj.child("groups")).map_err(|e| {
            if e.reason == "must not be empty" {
                error(&e.path, "must not be empty (leave groups out to allow everyone)")
            } else {
                e
            }
        })?),
    };
    Ok(Entry { id, display_name, created_at, groups })
}

/// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, fields in range.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let fields = (|| {
        let (month, day) = (digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        digits(0..4)?;
        let separators = b.get(4) == Some(&b'-')
            && b.get(7) == Some(&b'-')
            && matches!(b.get(10), Some(b'T' | b't'))
            && b.get(13) == Some(&b':')
            && b.get(16) == Some(&b':');
        let in_range =
            (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 && minute < 60 && second <= 60;
        Some(separators && in_range)
    })();
    if fields != Some(true) {
        return false;
    }
    let mut rest = b.get(19..).unwrap_or_default();
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|d| d.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = frac.get(n..).unwrap_or_default();
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) && (*h1, *h2) <= (b'2', b'3') && *m1 <= b'5'
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_rfc3339;

    #[test]
    fn rfc3339_date_times() {
        for good in [
            "2025-05-14T00:00:00Z",
            "2024-02-29T23:59:60.123+05:30",
            "2025-01-01t00:00:00z",
            "2025-01-01T00:00:00-00:00",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "2025-05-14",
            "2025-13-01T00:00:00Z",
            "2025-05-14 00:00:00Z",
            "2025-05-14T00:00:00",
            "2025-05-14T00:00:00.Z",
            "2025-05-14T24:00:00Z",
            "2025-05-14T00:00:00+5:30",
            "2025-05-14T00:00:00+24:00",
            "２０２５-05-14T00:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
