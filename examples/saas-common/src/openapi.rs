//! The app's OpenAPI document: the library's routes (from its route table) merged with the
//! app's own JSON API, served by both example apps at `GET /openapi.json`.

use keystead::Auth;
use keystead::utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use keystead::utoipa::openapi::request_body::RequestBodyBuilder;
use keystead::utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, SchemaFormat, Type};
use keystead::utoipa::openapi::security::SecurityRequirement;
use keystead::utoipa::openapi::{
    Content, KnownFormat, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, ResponseBuilder,
    Schema,
};

fn string(format: Option<KnownFormat>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format.map(SchemaFormat::KnownFormat))
}

fn object(fields: &[(&str, Schema)]) -> Schema {
    let mut builder = ObjectBuilder::new().schema_type(Type::Object);
    for (name, schema) in fields {
        builder = builder.property(*name, schema.clone()).required(*name);
    }
    builder.into()
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// An operation of the app's API: needs a session with an active organization or an API
/// token of the organization, with `permission`.
fn operation(
    id: &str,
    summary: &str,
    permission: &str,
    status: &str,
    reply: RefOr<Schema>,
) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(format!("{summary} (needs `{permission}`)")))
        .tag("app")
        .security(SecurityRequirement::new::<_, _, &str>("session", []))
        .security(SecurityRequirement::new::<_, _, &str>("apiToken", []))
        .response(
            status,
            ResponseBuilder::new()
                .description(summary)
                .content("application/json", Content::new(Some(reply)))
                .build(),
        )
        .response(
            "default",
            ResponseBuilder::new()
                .description("An error: the stable `code` says which.")
                .content(
                    "application/problem+json",
                    Content::new(Some(reference("Problem"))),
                )
                .build(),
        )
}

/// The document: the library's operations and the app's (`/api/projects`,
/// `/api/deployments`, `/api/billing`), as JSON.
#[must_use]
pub fn openapi_json(auth: &Auth) -> String {
    let mut document = auth.openapi();
    let project = object(&[
        ("id", string(Some(KnownFormat::Uuid)).into()),
        ("name", string(None).into()),
    ]);
    let deployment = object(&[
        ("id", string(Some(KnownFormat::Uuid)).into()),
        ("project_id", string(Some(KnownFormat::Uuid)).into()),
        ("status", string(None).into()),
    ]);
    let billing = object(&[
        ("plan", string(None).into()),
        (
            "seats",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .into(),
        ),
    ]);
    let new_deployment = object(&[("project_id", string(Some(KnownFormat::Uuid)).into())]);
    let projects = operation(
        "listProjects",
        "The active organization's projects",
        "read:projects",
        "200",
        keystead::utoipa::openapi::schema::ArrayBuilder::new()
            .items(reference("Project"))
            .into(),
    )
    .build();
    let deploy = operation(
        "createDeployment",
        "Queue a deployment of a project",
        "write:deployments",
        "201",
        reference("Deployment"),
    )
    .request_body(Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(
                "application/json",
                Content::new(Some(reference("NewDeployment"))),
            )
            .build(),
    ))
    .build();
    let billing_op = operation(
        "getBilling",
        "The plan and the seats in use",
        "billing:manage",
        "200",
        reference("Billing"),
    )
    .build();
    let app = OpenApiBuilder::new()
        .paths(
            PathsBuilder::new()
                .path("/api/projects", PathItem::new(HttpMethod::Get, projects))
                .path("/api/deployments", PathItem::new(HttpMethod::Post, deploy))
                .path("/api/billing", PathItem::new(HttpMethod::Get, billing_op))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .schema("Project", project)
                .schema("Deployment", deployment)
                .schema("NewDeployment", new_deployment)
                .schema("Billing", billing)
                .build(),
        ))
        .build();
    document.merge(app);
    document.info.title = "SaaS example (keystead)".to_owned();
    document
        .to_json()
        .unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
}
