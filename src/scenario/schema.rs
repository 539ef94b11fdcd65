//! The JSON Schema of the scenario format, generated from the types so it cannot drift; editors
//! with yaml-language-server use it for completion and inline errors.

/// The schema, as JSON.
pub fn json_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(super::model::Scenario)).expect("schema serialises");
    if let Some(map) = schema.as_object_mut() {
        map.insert("$id".into(), "https://shakedown.dev/schema/scenario.schema.json".into());
        map.insert("title".into(), "shakedown scenario".into());
    }
    schema
}
