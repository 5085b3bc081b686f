//! The thin layer that talks to the proxy-wasm host. Decisions are made in the pure modules; this
//! layer reads what they need from the host and applies what they decide.

mod host;
mod http;
mod metrics;
mod models;
mod root;
mod shared;
mod usage;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
