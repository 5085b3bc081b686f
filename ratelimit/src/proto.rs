//! The subset of Envoy's rate-limit service API (envoy.service.ratelimit.v3, rls.proto, and
//! envoy.extensions.common.ratelimit.v3.RateLimitDescriptor) this service reads and writes, as prost
//! messages with the .proto field numbers. Written by hand: generating them needs protoc and Envoy's
//! whole proto tree (validate, udpa annotations), neither of which a fresh machine has. Fields this
//! service never sets or reads (quota, raw_body, dynamic_metadata, descriptor `limit` overrides) are
//! left out: prost skips unknown fields on decode.

#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitRequest {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// 0 (unset) means 1.
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitDescriptor {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    /// google.protobuf.UInt64Value: when set (even to 0), it replaces the request's hits_addend.
    #[prost(message, optional, tag = "3")]
    pub hits_addend: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Code {
    Unknown = 0,
    Ok = 1,
    OverLimit = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimitResponse {
    #[prost(enumeration = "Code", tag = "1")]
    pub overall_code: i32,
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DescriptorStatus {
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    #[prost(message, optional, tag = "2")]
    pub current_limit: Option<RateLimit>,
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<prost_types::Duration>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RateLimit {
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// RateLimitResponse.RateLimit.Unit: the numbers of [`crate::window::Unit`].
    #[prost(int32, tag = "2")]
    pub unit: i32,
}

// The RateLimitService server and client (tonic-build's manual builder, see build.rs).
include!(concat!(env!("OUT_DIR"), "/envoy.service.ratelimit.v3.RateLimitService.rs"));
