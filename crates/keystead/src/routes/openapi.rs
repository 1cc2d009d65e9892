//! The OpenAPI 3.1 document of the library's routes, made from the route table: every row is an
//! operation, its body and reply types are the schemas of [`super::schema`], and every error
//! is the `application/problem+json` [`Problem`].
//!
//! ```
//! # async fn example(auth: keystead::Auth) {
//! let document = auth.openapi();
//! assert!(document.paths.paths.contains_key("/auth/sign-in"));
//! // An app merges its own document into it (utoipa's `OpenApi::merge`), then serves it.
//! let json = document.to_json().unwrap();
//! # }
//! ```

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Content, HeaderBuilder, InfoBuilder, KnownFormat, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    RefOr, Required, ResponseBuilder, Schema,
};

use super::schema::Problem;
use super::table::{Access, Answer, BodyKind, ROUTES, RouteSpec, is_id_param};
use crate::Auth;

/// The name of the session cookie's security scheme.
const SESSION: &str = "session";
/// The name of the API token's security scheme.
const TOKEN: &str = "apiToken";

fn http_method(method: &http::Method) -> Option<HttpMethod> {
    Some(match *method {
        http::Method::GET => HttpMethod::Get,
        http::Method::POST => HttpMethod::Post,
        http::Method::PUT => HttpMethod::Put,
        http::Method::PATCH => HttpMethod::Patch,
        http::Method::DELETE => HttpMethod::Delete,
        http::Method::HEAD => HttpMethod::Head,
        http::Method::OPTIONS => HttpMethod::Options,
        _ => return None,
    })
}

fn string_schema(format: Option<KnownFormat>) -> Schema {
    let mut builder = ObjectBuilder::new().schema_type(Type::String);
    if let Some(format) = format {
        builder = builder.format(Some(SchemaFormat::KnownFormat(format)));
    } else {
        builder = builder.min_length(Some(1));
    }
    builder.into()
}

fn answer_response(
    answer: &Answer,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> utoipa::openapi::Response {
    let mut response = ResponseBuilder::new().description(answer.description);
    if let Some(schema) = answer.schema {
        response = response.content("application/json", Content::new(Some(schema(schemas))));
    }
    for media_type in answer.download {
        response = response.content(*media_type, Content::new(Some(string_schema(None))));
    }
    if !answer.download.is_empty() {
        response = response.header(
            "Content-Disposition",
            HeaderBuilder::new()
                .schema(string_schema(None))
                .description(Some("attachment, with a file name."))
                .build(),
        );
    }
    if answer.redirect {
        response = response.header(
            "Location",
            HeaderBuilder::new()
                .schema(string_schema(None))
                .description(Some("Where to go."))
                .build(),
        );
    }
    if answer.sets_cookie {
        response = response.header(
            "Set-Cookie",
            HeaderBuilder::new()
                .schema(string_schema(None))
                .description(Some("The session cookie, set or cleared."))
                .build(),
        );
    }
    response.build()
}

fn operation(
    route: &RouteSpec,
    forms: bool,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(route.operation_id))
        .summary(Some(route.summary))
        .tag(route.tag);
    for segment in route.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let format = is_id_param(name).then_some(KnownFormat::Uuid);
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(string_schema(format))),
            );
        }
    }
    for query in route.query {
        op = op.parameter(
            ParameterBuilder::new()
                .name(query.name)
                .parameter_in(ParameterIn::Query)
                .required(if query.required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(query.description))
                .schema(Some(string_schema(None))),
        );
    }
    if let Some(schema) = route.body_schema {
        let schema = schema(schemas);
        let mut body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", Content::new(Some(schema.clone())));
        if forms && route.body == BodyKind::JsonOrForm {
            body = body.content(
                "application/x-www-form-urlencoded",
                Content::new(Some(schema)),
            );
        }
        op = op.request_body(Some(body.build()));
    }
    for answer in route.answers {
        op = op.response(answer.status.to_string(), answer_response(answer, schemas));
    }
    op = op.response(
        "default",
        ResponseBuilder::new()
            .description("An error: the stable `code` says which.")
            .content(
                "application/problem+json",
                Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem")))),
            )
            .build(),
    );
    match route.access {
        Access::Public => {}
        Access::Session => {
            op = op.security(SecurityRequirement::new::<_, _, &str>(SESSION, []));
        }
        Access::Principal => {
            op = op
                .security(SecurityRequirement::new::<_, _, &str>(SESSION, []))
                .security(SecurityRequirement::new::<_, _, &str>(TOKEN, []));
        }
    }
    op.build()
}

impl Auth {
    /// The OpenAPI 3.1 document of the library's routes as this `Auth` serves them (under its
    /// base path, with its session cookie's name). An app merges its own operations into it
    /// and serves it (the example apps serve theirs at `/openapi.json`).
    #[must_use]
    pub fn openapi(&self) -> OpenApi {
        let mut schemas = Vec::new();
        let mut paths = PathsBuilder::new();
        let mut items: Vec<(String, PathItem)> = Vec::new();
        for route in ROUTES {
            let Some(method) = http_method(&route.method) else {
                continue;
            };
            let path = self.surface().library_path(route.path);
            let forms = self.surface().form_bodies();
            let item = PathItem::new(method, operation(route, forms, &mut schemas));
            match items.iter_mut().find(|(p, _)| *p == path) {
                Some((_, existing)) => existing.merge_operations(item),
                None => items.push((path, item)),
            }
        }
        for (path, item) in items {
            paths = paths.path(path, item);
        }
        schemas.push((
            "Problem".to_owned(),
            <Problem as utoipa::PartialSchema>::schema(),
        ));
        let mut components = ComponentsBuilder::new()
            .security_scheme(
                SESSION,
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    self.cookies().session_cookie_name(),
                    "The session cookie set by sign-in.",
                ))),
            )
            .security_scheme(
                TOKEN,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("sk_live_ JWT")
                        .description(Some("An API token (`Authorization: Bearer sk_live_…`)."))
                        .build(),
                ),
            );
        for (name, schema) in schemas {
            components = components.schema(name, schema);
        }
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("keystead")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(
                        "Sign-up and sign-in, sessions, organizations, invitations and API \
                         tokens. Errors are RFC 9457 problem details with a stable `code`.",
                    ))
                    .build(),
            )
            .paths(paths.build())
            .components(Some(components.build()))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_one_operation_of_the_document() {
        let mut schemas = Vec::new();
        for route in ROUTES {
            let op = operation(route, true, &mut schemas);
            assert_eq!(op.operation_id.as_deref(), Some(route.operation_id));
            assert!(op.responses.responses.contains_key("default"));
        }
        assert!(schemas.iter().any(|(name, _)| name == "SignInBody"));
        assert!(schemas.iter().any(|(name, _)| name == "UserView"));
    }
}
