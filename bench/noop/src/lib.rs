//! Baselines for `make bench`, no verification in any:
//! - without a plugin configuration it does nothing: the root context makes HTTP contexts that keep
//!   every callback's default (what any Wasm filter costs a request);
//! - with the configuration `read-response-body`, each response body chunk is copied into the VM
//!   and dropped: the floor of any filter that reads a streamed answer (the usage record does);
//! - with one, a `google.protobuf.StringValue` of lines `name: value` (set) and `-name` (remove),
//!   each request reads the request headers once, as the gateway filter does, then removes and sets
//!   those headers: the host calls of the gateway filter's cache hit, and nothing else.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    edits: Option<Rc<Edits>>,
    read_response_body: bool,
}

#[derive(Default)]
struct Edits {
    remove: Vec<String>,
    set: Vec<(String, String)>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = self.get_plugin_configuration() else { return true };
        if config.trim_ascii() == b"read-response-body" {
            self.read_response_body = true;
            return true;
        }
        let mut edits = Edits::default();
        for line in String::from_utf8_lossy(&config).lines().map(str::trim).filter(|l| !l.is_empty()) {
            match (line.strip_prefix('-'), line.split_once(':')) {
                (Some(name), _) => edits.remove.push(name.trim().to_owned()),
                (None, Some((name, value))) => {
                    edits.set.push((name.trim().to_owned(), value.trim().to_owned()))
                }
                (None, None) => return false,
            }
        }
        self.edits = Some(Rc::new(edits));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match &self.edits {
            None if self.read_response_body => Some(Box::new(ReadBody)),
            None => Some(Box::new(Pass)),
            Some(edits) => Some(Box::new(Edit(Rc::clone(edits)))),
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Pass;

impl Context for Pass {}

impl HttpContext for Pass {}

struct ReadBody;

impl Context for ReadBody {}

impl HttpContext for ReadBody {
    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        std::hint::black_box(self.get_http_response_body(0, body_size));
        Action::Continue
    }
}

struct Edit(Rc<Edits>);

impl Context for Edit {}

impl HttpContext for Edit {
    /// A host call that fails answers 500, so the bench's "every response 2xx" check sees a
    /// baseline that did not do its work.
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match edit(&self.0) {
            Ok(()) => Action::Continue,
            Err(_) => {
                let _ = hostcalls::send_http_response(500, vec![], Some(b"header edit failed"));
                Action::Pause
            }
        }
    }
}

fn edit(edits: &Edits) -> Result<(), Status> {
    let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders)?;
    for name in &edits.remove {
        if headers.iter().any(|(n, _)| n == name) {
            hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None)?;
        }
    }
    for (name, value) in &edits.set {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))?;
    }
    Ok(())
}
