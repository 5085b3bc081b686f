//! Per-request glue of the usage record: hands request and answer chunks to `metering::Meter` and
//! writes what it says as filter state (`wasm.gateway_*`). Every callback lets the data through at
//! once: nothing here waits or buffers.

use log::debug;
use proxy_wasm::types::Status;

use super::host;
use super::models;
use super::shared::Shared;
use crate::identity::Identity;
use crate::ids::ContextId;
use crate::metering::{self, Admission, Meter};
use crate::metrics::model_label;

/// The request is allowed: set its budget group header, write `wasm.gateway_cost` = 0 (so that a
/// rate limit charging it never reads a missing value) and carry out the rest of its admission
/// (`metering::admit`).
pub fn on_allowed(
    shared: &Shared,
    context: ContextId,
    headers: &[(String, String)],
    identity: &Identity,
) -> Result<(), Status> {
    let config = &shared.config;
    let admission = metering::admit(config, headers, &identity.groups);
    host::set_request_header(&config.headers.budget_group, config.budgets.name(admission.budget_group))?;
    host::set_property(metering::COST, "0")?;
    if admission.strip_accept_encoding {
        host::remove_request_header("accept-encoding")?;
    }
    let mut allowed = shared.allowed.borrow_mut();
    allowed.retain(|(id, _)| *id != context);
    allowed.push((context, admission));
    Ok(())
}

/// Forgets a request that ended before its context picked up its decision.
pub fn forget(shared: &Shared, context: ContextId) {
    if let Ok(mut allowed) = shared.allowed.try_borrow_mut() {
        allowed.retain(|(id, _)| *id != context);
    }
}

/// The usage side of one HTTP context.
#[derive(Default)]
pub struct RequestUsage {
    allowed: Option<Admission>,
    meter: Option<Box<Meter>>,
}

impl RequestUsage {
    /// Picks up the decision once it is taken; the meter exists from then on for metered requests.
    fn settle(&mut self, shared: &Shared, context: ContextId) -> Option<&mut Meter> {
        if self.allowed.is_none() {
            let mut allowed = shared.allowed.borrow_mut();
            self.allowed =
                allowed.iter().position(|(id, _)| *id == context).map(|index| allowed.swap_remove(index).1);
            if self.allowed.is_some_and(|a| a.metered) {
                self.meter = Some(Box::default());
            }
        }
        self.meter.as_deref_mut()
    }

    /// A request-body chunk let through; `chunk` reads it. A body the models gate scans
    /// (`models.enforce`) is not scanned twice: the meter takes the gate's reading.
    pub fn request_body<'a>(
        &mut self,
        shared: &Shared,
        context: ContextId,
        chunk: impl FnOnce() -> Option<&'a [u8]>,
        end_of_stream: bool,
    ) {
        let Some(meter) = self.settle(shared, context) else { return };
        if !meter.reads_request() {
            return;
        }
        let followed =
            models::enforced_model(shared, context, |model| meter.follow_gate(model, end_of_stream));
        if followed.is_none() {
            match chunk() {
                Some(chunk) => meter.request_body(chunk, end_of_stream),
                None if end_of_stream => meter.request_body(&[], true),
                None => {}
            }
        }
        write(shared, meter, context);
    }

    pub fn response_headers(&mut self, shared: &Shared, context: ContextId) {
        let Some(meter) = self.settle(shared, context) else { return };
        let status = host::response_header(":status").and_then(|s| s.parse().ok());
        let content_type = host::response_header("content-type");
        let encoding = host::response_header("content-encoding");
        meter.response_headers(status, content_type.as_deref(), encoding.as_deref());
        write(shared, meter, context);
    }

    pub fn response_body(&mut self, shared: &Shared, context: ContextId, size: usize, end_of_stream: bool) {
        let Some(meter) = self.settle(shared, context) else { return };
        if let Some(chunk) = host::response_body(size) {
            meter.response_body(&chunk, end_of_stream);
        } else if end_of_stream {
            meter.response_body(&[], true);
        }
        write(shared, meter, context);
    }

    /// The request is over, however it ended: the last values, and the metrics.
    pub fn log(&mut self, shared: &Shared, context: ContextId) {
        self.settle(shared, context);
        let group = shared.config.budgets.name(self.allowed.and_then(|a| a.budget_group));
        let Some(meter) = self.meter.as_deref_mut() else { return };
        meter.end();
        write(shared, meter, context);
        // Per-model metrics are bounded by `models.catalog`: any other model counts as `other`.
        let catalog = shared.config.models.catalog.iter().map(|entry| entry.id.as_str());
        let model = model_label(catalog, meter.model());
        for (metric, n) in meter.counts(&shared.config.usage.cost_weights, group, model) {
            shared.metrics.add(metric, n);
        }
    }
}

fn write(shared: &Shared, meter: &mut Meter, context: ContextId) {
    for (name, value) in meter.writes(&shared.config.usage.cost_weights) {
        if let Err(status) = host::set_property(name, &value) {
            debug!("cannot write filter state name={name} status={status:?} ctx={context}");
        }
    }
}
