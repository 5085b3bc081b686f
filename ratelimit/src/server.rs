//! The gRPC server: `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, and on the same
//! port a plain HTTP `GET /healthz` (HTTP/1.1 or h2c) that answers 200 while the service runs (it
//! does not depend on Redis: a Redis outage is answered per request, see `Refusal::Storage`).

use crate::limiter::{Limiter, Refusal};
use crate::proto::rate_limit_service_server::{RateLimitService, RateLimitServiceServer};
use crate::proto::{RateLimitRequest, RateLimitResponse};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::{Request, Response, Status};

struct Rls(Arc<Limiter>);

#[tonic::async_trait]
impl RateLimitService for Rls {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        match self.0.should_rate_limit(request.get_ref()).await {
            Ok(answer) => Ok(Response::new(answer)),
            Err(Refusal::Invalid(why)) => Err(Status::invalid_argument(why)),
            Err(Refusal::Storage) => Err(Status::unavailable("rate-limit counters unavailable")),
        }
    }
}

pub async fn serve(
    limiter: Arc<Limiter>,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let routes = tonic::service::Routes::new(RateLimitServiceServer::new(Rls(limiter)))
        .into_axum_router()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(routes.into())
        .serve_with_shutdown(listen, shutdown)
        .await
}
