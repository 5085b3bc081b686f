//! What the root context and the HTTP contexts of one VM share: the configuration, the VM's state
//! (one owner, `VmState`, in one cell), the metrics, and the per-request records of the usage and
//! models glue.

use std::cell::RefCell;
use std::collections::HashMap;

use super::metrics::Metrics;
use crate::config::Config;
use crate::ids::ContextId;
use crate::metering::Admission;
use crate::models::RequestGate;
use crate::vm_state::VmState;

pub struct Shared {
    pub config: Config,
    /// Borrowed only between host calls: a host call may run another callback of this VM.
    pub state: RefCell<VmState>,
    pub metrics: Metrics,
    /// Requests let through whose HTTP context has not yet picked up what that settled for the
    /// usage record: a request that waited for keys is allowed from the root context.
    pub allowed: RefCell<Vec<(ContextId, Admission)>>,
    /// Where each request stands with `models` (its body gate), for the same reason.
    pub models: RefCell<HashMap<ContextId, RequestGate>>,
}
