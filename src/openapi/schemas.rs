//! Schemas derive cannot express. `MonitorView` flattens `MonitorSpec`, and
//! a derived flatten is `allOf` with the spec's own schema, which refuses
//! unknown fields (`additionalProperties: false`, right for a request) and so
//! would refuse the view's own fields. Here the view is built from the spec's
//! schema instead: its properties, opened up, plus the view's.

use crate::heartbeat::{Current, MonitorSpec, MonitorView};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{AdditionalProperties, ObjectBuilder, Schema, Type},
    },
};

impl PartialSchema for MonitorView {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut view)) = MonitorSpec::schema() else {
            // The spec is a plain object; anything else would be a utoipa change.
            return RefOr::T(Schema::Object(Default::default()));
        };
        view.description = Some(
            "A monitor as the API shows it: its settings (header values redacted for \
             client tokens), its latest state and its count of consecutive failed checks."
                .into(),
        );
        view.additional_properties = None::<Box<AdditionalProperties<Schema>>>;
        view.example = None;
        let string = || ObjectBuilder::new().schema_type(Type::String).build();
        view.properties.insert("id".into(), string().into());
        view.properties.insert("accountId".into(), string().into());
        view.properties.insert(
            "state".into(),
            RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Current::name())),
        );
        view.properties.insert(
            "consecutiveFailures".into(),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .build()
                .into(),
        );
        // Every setting has a value once stored (defaults applied).
        let mut required: Vec<String> = view.properties.keys().cloned().collect();
        required.sort();
        view.required = required;
        RefOr::T(Schema::Object(view))
    }
}

impl ToSchema for MonitorView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Current::name().into(), Current::schema()));
        Current::schemas(schemas);
    }
}
