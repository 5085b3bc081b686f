//! Metrics through the host, defined on first use; ids are remembered by a cheap key so the request
//! path formats no names.

use std::cell::RefCell;

use super::host;
use crate::metrics::Metric;

/// A few dozen metrics at most: a list scanned without allocating beats hashing an owned key.
#[derive(Default)]
pub struct Metrics {
    ids: RefCell<Vec<(Key, u32)>>,
}

/// `Metric::key` with the provider name owned.
type Key = (u8, u16, String);

impl Metrics {
    fn id(&self, metric: &Metric) -> Option<u32> {
        let (kind, detail, name) = metric.key();
        let known = self
            .ids
            .borrow()
            .iter()
            .find(|((k, d, n), _)| *k == kind && *d == detail && n == name)
            .map(|(_, id)| *id);
        if known.is_some() {
            return known;
        }
        let id = host::define_metric(metric.is_gauge(), &metric.name())?;
        self.ids.borrow_mut().push(((kind, detail, name.to_owned()), id));
        Some(id)
    }

    pub fn increment(&self, metric: Metric) {
        if let Some(id) = self.id(&metric) {
            host::increment_metric(id);
        }
    }

    pub fn add(&self, metric: Metric, n: u64) {
        if let Some(id) = self.id(&metric) {
            host::add_metric(id, n);
        }
    }

    pub fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.id(&metric) {
            host::record_metric(id, value);
        }
    }
}
