//! The results JSON is a contract: a real run's `--json` output must validate
//! against the committed schema, and a document that breaks the contract must not.

use std::time::Duration;

fn schema() -> jsonschema::Validator {
    let s: serde_json::Value =
        serde_json::from_str(wsherd::results::RESULTS_SCHEMA).expect("schema is JSON");
    jsonschema::validator_for(&s).expect("schema compiles")
}

#[test]
fn test_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.json");
    let p = path.to_str().unwrap();
    let cfg = wsherd::engine::Run::from_args([
        "-c",
        "20",
        "-d",
        "2s",
        "-q",
        "--json",
        p,
        "--threshold",
        "rtt.p99<10s",
    ])
    .unwrap();
    let t0 = std::time::Instant::now();
    let res = wsherd::run(cfg).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(15));
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let v = schema();
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}");
    // The file is the same data the run returned.
    let back: wsherd::results::RunResults = serde_json::from_str(&text).unwrap();
    assert_eq!(back.messages.sent, res.messages.sent);
    assert!(back.messages.ledger_balances());
    assert_eq!(doc["thresholds"][0]["passed"], true);
    assert!(!back.series.is_empty());
    // The histogram travels losslessly.
    let h = wsherd::vocab::hist::decode_histogram(&back.latency.rtt.hdr).expect("hdr decodes");
    assert_eq!(h.len(), back.latency.rtt.count);
    assert_eq!(h.len(), back.messages.received);

    // A document that breaks the contract is rejected (the schema is not vacuous).
    let mut broken = doc.clone();
    broken["messages"]["sent"] = serde_json::json!(-1);
    assert!(!v.is_valid(&broken));
    let mut missing = doc.clone();
    missing.as_object_mut().unwrap().remove("latency");
    assert!(!v.is_valid(&missing));
    let mut extra = doc;
    extra["config"]["surprise"] = serde_json::json!(true);
    assert!(!v.is_valid(&extra));
}
