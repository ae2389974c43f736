//! Schemas of the types that serialize themselves (a string or an object they build), written
//! by hand to say what their `Serialize` writes.

use serde_json::json;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder};
use utoipa::openapi::{RefOr, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::rules::path::JsonPath;
use crate::rules::pattern::Pattern;
use crate::rules::render::{Templates, Text};
use crate::rules::timing::{Timing, Window};
use crate::time::Timestamp;

fn string(description: &str, example: serde_json::Value) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .examples([example])
}

/// Always UTC, to the millisecond (`Display` of [`Timestamp`]).
impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        string(
            "An instant, RFC 3339 in UTC to the millisecond.",
            json!("2026-12-01T14:00:00.000Z"),
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .into()
    }
}
impl ToSchema for Timestamp {}

impl PartialSchema for JsonPath {
    fn schema() -> RefOr<Schema> {
        string(
            "A JSON path into the event (`$.detail.tenant_id`).",
            json!("$.detail.tenant_id"),
        )
        .into()
    }
}
impl ToSchema for JsonPath {}

impl PartialSchema for Pattern {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An EventBridge event pattern (the subset docs/rules.md lists), kept as written.",
            ))
            .examples([json!({"source": ["billing"], "detail-type": ["invoice.overdue"]})])
            .into()
    }
}
impl ToSchema for Pattern {}

impl PartialSchema for Templates {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The message per language (`en`, `es`, `pt`, `default`; `default` or `en` \
                 required): MiniJinja templates over the event.",
            ))
            .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
            .examples([json!({"en": "Invoice {{ detail.invoice_id }} is overdue."})])
            .into()
    }
}
impl ToSchema for Templates {}

impl PartialSchema for Text {
    fn schema() -> RefOr<Schema> {
        string(
            "A MiniJinja template over the event.",
            json!("invoice-{{ detail.invoice_id }}"),
        )
        .into()
    }
}
impl ToSchema for Text {}

impl PartialSchema for Window {
    fn schema() -> RefOr<Schema> {
        string(
            "An ISO 8601 duration in fixed units (days are 24 hours).",
            json!("P2D"),
        )
        .into()
    }
}
impl ToSchema for Window {}

impl PartialSchema for Timing {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "When to send: `\"now\"`, a delay after the event's time, or relative to a \
                 date in the event (an offset, then a local time of day in the recipient's zone).",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["now"])),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("delay", string("ISO 8601 duration.", json!("PT2H")))
                    .required("delay"),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("at", JsonPath::schema())
                    .property("offset", string("ISO 8601 duration.", json!("P1D")))
                    .property("local_time", string("HH:MM.", json!("10:00")))
                    .required("at"),
            )
            .into()
    }
}
impl ToSchema for Timing {}
