//! The load benchmark's axum server (see the crate docs): the auth layer wraps the router, as
//! in `examples/axum-saas`, and `/bench/projects` goes to the same router without the layer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, ServiceExt};
use keystead_axum::{AuthExt, OrgMember, require_permission};
use load_target::Target;
use tower::Layer;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    saas_common::init_tracing();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("load-target-axum: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let (target, listener) = load_target::setup("load-target-axum").await?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let addr = target.addr;
    let layer = target.auth.layer().protect("/dashboard");
    let router = router(target);
    let service = BenchSplit {
        // The same router, so the same routing work, without the auth layer.
        bare: router.clone(),
        app: layer.layer(router),
    };
    println!("listening on http://{addr}");
    axum::serve(
        listener,
        service.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}

/// The example app's API route, the baseline and the library's routes.
fn router(target: Target) -> Router {
    let auth = target.auth.clone();
    Router::new()
        .route("/api/projects", get(list_projects))
        .route("/bench/projects", get(bench_projects))
        .merge(auth.routes())
        .with_state(target)
}

/// As `GET /api/projects` in `examples/axum-saas`.
#[require_permission("read:projects", adapter = keystead_axum)]
async fn list_projects(State(target): State<Target>, member: OrgMember) -> Response {
    Json(target.projects.list(member.org_id)).into_response()
}

/// The same work without a principal.
async fn bench_projects(State(target): State<Target>) -> Response {
    Json(target.projects.list(load_target::demo_org())).into_response()
}

/// Sends `/bench/projects` to the router without the auth layer, everything else to the app;
/// both kinds of request pay the same one comparison.
#[derive(Clone)]
struct BenchSplit<A> {
    bare: Router,
    app: A,
}

impl<A> tower::Service<Request> for BenchSplit<A>
where
    A: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<<Router as tower::Service<Request>>::Future, A::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.app.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.uri().path() == "/bench/projects" {
            Either::Left {
                future: tower::Service::call(&mut self.bare, request),
            }
        } else {
            Either::Right {
                future: self.app.call(request),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`BenchSplit`].
    #[project = EitherProj]
    enum Either<L, R> {
        Left { #[pin] future: L },
        Right { #[pin] future: R },
    }
}

impl<L, R, T> Future for Either<L, R>
where
    L: Future<Output = T>,
    R: Future<Output = T>,
{
    type Output = T;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project() {
            EitherProj::Left { future } => future.poll(cx),
            EitherProj::Right { future } => future.poll(cx),
        }
    }
}
