//! The load benchmark's actix-web server (see the crate docs): the app in one scope wrapped by
//! the auth middleware, as in `examples/actix-saas`, and `/bench/projects` beside it, routed
//! the same way (a scope, then its first resource), without the middleware. `ACTIX_WORKERS`
//! sets the number of workers (default: actix's, one per core).

use actix_web::{App, HttpResponse, HttpServer, web};
use keystead_actix::{AuthExt, OrgMember, require_permission};
use load_target::Target;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    saas_common::init_tracing();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("load-target-actix: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let workers = match std::env::var("ACTIX_WORKERS") {
        Ok(v) => Some(
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("ACTIX_WORKERS: expected a positive number, got {v:?}"))?,
        ),
        Err(_) => None,
    };
    let (target, listener) = load_target::setup("load-target-actix").await?;
    let addr = target.addr;
    let state = web::Data::new(target);
    let mut server = HttpServer::new(move || {
        let auth = &state.auth;
        App::new()
            .app_data(state.clone())
            .service(
                web::scope("/bench")
                    .service(web::resource("/projects").route(web::get().to(bench_projects))),
            )
            .service(
                web::scope("")
                    .wrap(auth.middleware().protect("/dashboard"))
                    .service(web::resource("/api/projects").route(web::get().to(list_projects)))
                    .service(auth.service()),
            )
    });
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    let server = server
        .listen(listener)
        .map_err(|e| format!("BIND {addr}: {e}"))?
        .run();
    println!("listening on http://{addr}");
    server.await.map_err(|e| e.to_string())
}

/// As `GET /api/projects` in `examples/actix-saas`.
#[require_permission("read:projects", adapter = keystead_actix)]
async fn list_projects(target: web::Data<Target>, member: OrgMember) -> HttpResponse {
    HttpResponse::Ok().json(target.projects.list(member.org_id))
}

/// The same work without a principal.
async fn bench_projects(target: web::Data<Target>) -> HttpResponse {
    HttpResponse::Ok().json(target.projects.list(load_target::demo_org()))
}
