//! Metrics through the host, defined on first use and remembered by name.

use std::cell::RefCell;
use std::collections::HashMap;

use super::host;
use crate::metrics::Metric;

#[derive(Default)]
pub struct Metrics {
    ids: RefCell<HashMap<String, u32>>,
}

impl Metrics {
    fn id(&self, metric: &Metric) -> Option<u32> {
        let name = metric.name();
        if let Some(id) = self.ids.borrow().get(&name) {
            return Some(*id);
        }
        let id = host::define_metric(metric.is_gauge(), &name)?;
        self.ids.borrow_mut().insert(name, id);
        Some(id)
    }

    pub fn increment(&self, metric: Metric) {
        if let Some(id) = self.id(&metric) {
            host::increment_metric(id);
        }
    }

    pub fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.id(&metric) {
            host::record_metric(id, value);
        }
    }
}
