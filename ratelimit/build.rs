//! The RateLimitService gRPC server and client, generated from this description instead of
//! rls.proto: the messages are hand-written in src/proto.rs, so no protoc is needed.
fn main() {
    let method = tonic_build::manual::Method::builder()
        .name("should_rate_limit")
        .route_name("ShouldRateLimit")
        .input_type("crate::proto::RateLimitRequest")
        .output_type("crate::proto::RateLimitResponse")
        .codec_path("tonic::codec::ProstCodec")
        .build();
    let service = tonic_build::manual::Service::builder()
        .name("RateLimitService")
        .package("envoy.service.ratelimit.v3")
        .method(method)
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
}
