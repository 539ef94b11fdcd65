//! The compose sections' validation: every bad name and missing part reported at its line.

use super::*;
use crate::scenario::load_file;

const COMPOSE: &str = "version: \"2.4\"\nservices:\n  pg1: { image: x, expose: [\"5432\", \"8008\"] }\n  pg2: { image: x, expose: [\"5432\", \"8008\"] }\n  etcd: { image: x, expose: [\"2379\"] }\n  haproxy: { image: x, expose: [\"5000\"] }\n";

const GOOD: &str = r#"name: patroni-leader-crash
seed: 1
duration: 60s
stack:
  compose: docker-compose.yml
  groups: { db: [pg1, pg2], dcs: [etcd] }
  roles:
    leader: { of: db, http: "http://{host}:8008/primary", status: 200 }
  ready:
    - { sql: "postgres://postgres:postgres@haproxy:5000/postgres", query: "SELECT 1" }
clients:
  rw: { sql: "postgres://postgres:postgres@haproxy:5000/postgres", timeout: 2s }
setup:
  - { client: rw, sql: "CREATE TABLE IF NOT EXISTS kv (key text PRIMARY KEY, n bigint)" }
workload:
  - { name: put, client: rw, rate: 100/s, kind: write, sql: "INSERT INTO kv (key, n) VALUES ({key}, {seq})" }
  - { name: get, client: rw, rate: 20/s, kind: read, sql: "SELECT key FROM kv ORDER BY n DESC LIMIT 20", page: 20 }
final_state:
  put: { client: rw, sql: "SELECT key FROM kv", per_node: [pg1, pg2] }
faults:
  - { at: 20s, crash: leader, restart_after: 20s }
checks:
  durability: {}
  slo: [ { op: put, phase: steady, p99: 100ms }, { op: any, phase: post, availability: 99% } ]
  recovery: { rto: 30s }
"#;

/// Write a compose file (`docker-compose.yml`) and the scenario into a temporary directory
/// and load it; errors with the directory written `DIR`.
pub(crate) fn load_with(scenario: &str, compose: &str) -> Result<crate::scenario::Loaded, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), compose).unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, scenario).unwrap();
    load_file(&file, &[]).map_err(|d| d.to_string().replace(&dir.path().display().to_string(), "DIR"))
}

fn load(scenario: &str) -> Result<crate::scenario::Loaded, String> {
    load_with(scenario, COMPOSE)
}

#[test]
fn the_issue_s_patroni_scenario_is_valid_and_its_groups_expand() {
    let loaded = load(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.scenario.stack.is_compose());
    assert_eq!(
        loaded.plan.faults[0].kind.hosts(),
        vec!["leader".to_owned()],
        "a role resolves when the fault starts"
    );
}

#[test]
fn every_bad_name_is_reported_at_its_place_with_a_hint() {
    let bad = GOOD
        .replace("haproxy:5000/postgres\", timeout", "haproxy2:5000/postgres\", timeout")
        .replace("http://{host}:8008/primary", "http://{host}:8009/primary")
        .replace("dcs: [etcd]", "dcs: []")
        .replace("crash: leader", "crash: pg9")
        .replace("name: get, client: rw", "name: get, client: ro");
    let errors = load(&bad).unwrap_err();
    for expected in [
        "DIR/s.yaml:12:14: `haproxy2` is not a service of the compose file",
        "hint: did you mean `haproxy`?",
        "port 8009 of `pg1` is not exposed",
        "expose: [\"8009\"]",
        "the group `dcs` has no members",
        "unknown service, group or role `pg9`",
        "unknown client `ro`",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
}

#[test]
fn built_in_keys_and_faults_are_refused_on_a_compose_stack_and_the_reverse() {
    let mixed = GOOD
        .replace("  compose: docker-compose.yml\n", "  compose: docker-compose.yml\n  replication: async\n")
        .replace(
            "- { at: 20s, crash: leader, restart_after: 20s }",
            "- { at: 20s, backpressure: {}, for: 5s }",
        );
    let errors = load(&mixed).unwrap_err();
    assert!(errors.contains("`stack.replication` configures the built-in stack"), "{errors}");
    assert!(errors.contains("`backpressure` is not available on a compose stack"), "{errors}");
    let builtin = "name: b\nduration: 10s\nclients: { rw: { http: 'http://api:80' } }\nworkload: [ { name: put, rate: 1/s } ]\n";
    let errors = crate::scenario::load_str(builtin, "b.yaml", &[]).unwrap_err().to_string();
    assert!(errors.contains("`clients` applies only to a compose stack"), "{errors}");
    assert!(errors.contains("names no built-in `op`"), "{errors}");
}

// Goal: `latency` acts on a compose stack (a packet delayer per service), its sides name
// services, groups or roles like a partition's, and a bad name is reported at its place.
#[test]
fn latency_on_a_compose_stack_names_its_sides_like_a_partition() {
    let slow = GOOD.replace(
        "- { at: 20s, crash: leader, restart_after: 20s }",
        "- { at: 20s, latency: { between: [[leader], [db]], delay: 50ms, jitter: 10ms }, for: 5s }",
    );
    let loaded = load(&slow).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.plan.faults[0].kind.name(), "latency");
    let bad = slow.replace("between: [[leader], [db]]", "between: [[leader], [pg3]]");
    let errors = load(&bad).unwrap_err();
    assert!(errors.contains("DIR/s.yaml:21:48: unknown service, group or role `pg3`"), "{errors}");
    let one_sided = slow.replace("between: [[leader], [db]]", "between: [[leader]]");
    let errors = load(&one_sided).unwrap_err();
    assert!(errors.contains("`latency.between` needs exactly two non-empty sides"), "{errors}");
}

#[test]
fn kinds_need_their_parts_and_templates_parse() {
    let bad = GOOD
        .replace("VALUES ({key}, {seq})", "VALUES ('x', {sek})")
        .replace("kind: read, sql", "kind: submit, sql");
    let errors = load(&bad).unwrap_err();
    assert!(errors.contains("unknown placeholder `{sek}`"), "{errors}");
    assert!(errors.contains("a `write` op never sends its key"), "{errors}");
    assert!(errors.contains("a `submit` op is an HTTP request"), "{errors}");
    assert!(errors.contains("`page` applies to `read` ops"), "{errors}");
}

#[test]
fn urls_name_a_service_and_a_port_defaulted_by_scheme() {
    let e = endpoint("postgres://u:p@haproxy:5000/postgres").unwrap();
    assert_eq!((e.scheme, e.service.as_str(), e.port), (Scheme::Postgres, "haproxy", 5000));
    assert_eq!(endpoint("mysql://root@inventory-db/inv").unwrap().port, 3306);
    assert_eq!(endpoint("http://api").unwrap().port, 80);
    let role = endpoint("http://{host}:8008/primary").unwrap();
    assert_eq!((role.service.as_str(), role.port), ("{host}", 8008));
    assert!(endpoint("redis://x:6379").unwrap_err().contains("unsupported scheme"));
    assert!(endpoint("haproxy:5000").unwrap_err().contains("not a URL"));
}

// Goal: a conservation check whose part names an unknown client, or an HTTP client, or a
// placeholder, is refused with the part's FILE:LINE:COL and a hint; a good one (with an `at: end`
// invariant beside it) loads. Method: the patroni scenario with an HTTP client added and a
// `checks.conservation` appended, then broken three ways.
#[test]
fn conservation_parts_name_sql_clients_and_run_once() {
    let compose = format!("{COMPOSE}  api: {{ image: x, expose: [\"8000\"] }}\n");
    let good = GOOD.replace("  rw: { sql:", "  api: { http: \"http://api:8000\" }\n  rw: { sql:")
        + concat!(
            "  invariants:\n",
            "    - { name: settled, client: rw, at: end, sql: \"SELECT count(*) = 0 FROM kv WHERE n < 0\" }\n",
            "  conservation:\n",
            "    - name: total\n",
            "      total: 1000\n",
            "      parts:\n",
            "        - { client: rw, sql: \"SELECT COALESCE(SUM(n), 0) FROM kv\" }\n",
            "        - { client: rw, sql: \"SELECT count(*) FROM kv\" }\n",
        );
    let loaded = load_with(&good, &compose).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.scenario.checks.conservation[0].parts.len(), 2);
    assert_eq!(loaded.scenario.checks.invariants[0].at, crate::scenario::declared::InvariantAt::End);
    let bad = good
        .replace("- { client: rw, sql: \"SELECT COALESCE", "- { client: rx, sql: \"SELECT COALESCE")
        .replace(
            "- { client: rw, sql: \"SELECT count(*) FROM kv\" }",
            "- { client: api, sql: \"SELECT {seq}\" }",
        );
    let errors = load_with(&bad, &compose).unwrap_err();
    for expected in [
        "DIR/s.yaml:33:21: unknown client `rx`",
        "hint: did you mean `rw`?",
        "DIR/s.yaml:34:21: a conservation part is a query: it needs an `sql` client",
        "DIR/s.yaml:34:31: placeholders are for workload ops",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
    let empty = good.replace(
        "      parts:\n        - { client: rw, sql: \"SELECT COALESCE(SUM(n), 0) FROM kv\" }\n        - { client: rw, sql: \"SELECT count(*) FROM kv\" }\n",
        "      parts: []\n",
    );
    let errors = load_with(&empty, &compose).unwrap_err();
    assert!(errors.contains("a conservation check needs at least one part"), "{errors}");
    let no_sql = good.replace(
        "- { client: rw, sql: \"SELECT count(*) FROM kv\" }",
        "- { client: rw, request: { path: / } }",
    );
    let errors = load_with(&no_sql, &compose).unwrap_err();
    assert!(errors.contains("request"), "{errors}");
    let builtin = "name: b\nduration: 10s\nworkload: [ { op: invest, rate: 1/s } ]\nchecks:\n  conservation: [ { name: t, total: 1, parts: [] } ]\n";
    let errors = crate::scenario::load_str(builtin, "b.yaml", &[]).unwrap_err().to_string();
    assert!(errors.contains("`checks.conservation` applies only to a compose stack"), "{errors}");
}
