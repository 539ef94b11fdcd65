//! Running a declared op: its templates rendered with the op's bindings, sent through its
//! client, and the reply read for what its kind needs — the server's key (`key_from`), the keys
//! a read saw (`keys_from`, or the first SQL column), a job's id (`id_from`) and its polls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::clients::{Client, Reply};
use crate::history::EntryType;
use crate::scenario::declared::{OpKind, PollSpec, RequestSpec};
use crate::scenario::model::Load;
use crate::workload::template::{Bindings, Template, render_body};
use crate::workload::{Answer, Executor, ScheduledOp};

/// A poll is not started this close to its op's deadline: the op must answer (with the job's
/// id) before the driver abandons it.
const POLL_MARGIN: Duration = Duration::from_millis(50);

/// The declared ops' executor over the run's clients.
pub struct Ops {
    clients: Arc<BTreeMap<String, Client>>,
}

impl Ops {
    /// An executor over `clients`, by name.
    pub fn new(clients: Arc<BTreeMap<String, Client>>) -> Ops {
        Ops { clients }
    }
}

#[async_trait]
impl Executor for Ops {
    async fn execute(
        &self,
        _op: &ScheduledOp,
        load: &Load,
        mut bindings: Bindings,
        deadline: Instant,
    ) -> Answer {
        let Some(client) = load.client.as_deref().and_then(|c| self.clients.get(c)) else {
            return Answer::of(EntryType::Fail, Some("unknown client (validation refuses it)".into()));
        };
        let reply = match send(client, load.sql.as_deref(), load.request.as_ref(), &mut bindings).await {
            Ok(reply) => reply,
            Err(message) => return Answer::of(EntryType::Fail, Some(message)),
        };
        match load.kind {
            Some(OpKind::Write) => write_answer(reply, load.key_from.as_deref()),
            Some(OpKind::Read) => read_answer(reply, load.keys_from.as_deref()),
            Some(OpKind::Submit) => {
                let (Some(id_from), Some(poll)) = (load.id_from.as_deref(), load.poll.as_ref()) else {
                    return Answer::of(EntryType::Fail, Some("a submit op without id_from or poll".into()));
                };
                submit(client, reply, id_from, poll, bindings, deadline).await
            }
            None => Answer::of(reply.kind, reply.error),
        }
    }
}

/// Render and send a statement or request.
pub async fn send(
    client: &Client,
    sql: Option<&str>,
    request: Option<&RequestSpec>,
    bindings: &mut Bindings,
) -> Result<Reply, String> {
    match (client, sql, request) {
        (Client::Sql(sql_client), Some(sql), _) => {
            let template = Template::parse(sql, false).map_err(|e| e.message)?;
            let (sql, values) = template.render_sql(bindings, sql_client.dialect());
            Ok(sql_client.run(&sql, &values).await)
        }
        (Client::Http(http), _, Some(request)) => {
            let (path, body, headers) = render_request(request, bindings)?;
            Ok(http.send(request.method(), &path, body.as_ref(), &headers).await)
        }
        _ => Err("the op's statement does not fit its client (validation refuses it)".into()),
    }
}

type Rendered = (String, Option<serde_json::Value>, Vec<(String, String)>);

fn render_request(request: &RequestSpec, bindings: &mut Bindings) -> Result<Rendered, String> {
    let path = Template::parse(&request.path, true).map_err(|e| e.message)?.render_text(bindings);
    let mut headers = Vec::new();
    for (name, value) in &request.headers {
        headers
            .push((name.clone(), Template::parse(value, true).map_err(|e| e.message)?.render_text(bindings)));
    }
    let body = match &request.body {
        Some(body) => Some(render_body(body, bindings).map_err(|e| e.message)?),
        None => None,
    };
    Ok((path, body, headers))
}

fn write_answer(reply: Reply, key_from: Option<&str>) -> Answer {
    let key =
        key_from.and_then(|pointer| reply.body.as_ref().and_then(|b| select(b, pointer).into_iter().next()));
    if reply.kind == EntryType::Ok && key_from.is_some() && key.is_none() {
        let error = format!("acknowledged, but no key at `{}` in the answer", key_from.unwrap_or_default());
        return Answer { key: None, ..Answer::of(EntryType::Info, Some(error)) };
    }
    Answer { key, ..Answer::of(reply.kind, reply.error) }
}

fn read_answer(reply: Reply, keys_from: Option<&str>) -> Answer {
    if reply.kind != EntryType::Ok {
        return Answer::of(EntryType::Fail, reply.error);
    }
    let keys = match (keys_from, &reply.body) {
        (Some(pattern), Some(body)) => select(body, pattern),
        (Some(_), None) => return Answer::of(EntryType::Fail, Some("the answer is not JSON".into())),
        (None, _) => reply.first_column,
    };
    Answer { keys: Some(keys), ..Answer::of(EntryType::Ok, None) }
}

/// Accepted with an id: poll until done, or answer `info` (accepted, not done in time) just
/// before the op's deadline, with the id, so `delivery` checks the job at the end.
async fn submit(
    client: &Client,
    reply: Reply,
    id_from: &str,
    poll: &PollSpec,
    bindings: Bindings,
    deadline: Instant,
) -> Answer {
    if reply.kind != EntryType::Ok {
        return Answer::of(reply.kind, reply.error);
    }
    let Some(job) = reply.body.as_ref().and_then(|b| select(b, id_from).into_iter().next()) else {
        let error = format!("accepted, but no id at `{id_from}` in the answer");
        return Answer::of(EntryType::Info, Some(error));
    };
    let mut bindings = bindings.with_id(&job);
    let cutoff = deadline.checked_sub(POLL_MARGIN).unwrap_or(deadline);
    loop {
        let polled = tokio::time::timeout_at(cutoff, poll_once(client, poll, &mut bindings)).await;
        if let Ok(true) = polled {
            return Answer { job: Some(job), ..Answer::of(EntryType::Ok, None) };
        }
        if Instant::now() + poll.every.get() >= cutoff {
            let error = Some("accepted, not done in time".into());
            return Answer { job: Some(job), ..Answer::of(EntryType::Info, error) };
        }
        tokio::time::sleep(poll.every.get()).await;
    }
}

/// One poll: is the job done?
pub async fn poll_once(client: &Client, poll: &PollSpec, bindings: &mut Bindings) -> bool {
    let Ok(reply) = send(client, None, Some(&poll.request), bindings).await else { return false };
    reply.kind == EntryType::Ok
        && reply.body.as_ref().and_then(|b| b.pointer(&poll.until.pointer)) == Some(&poll.until.equals)
}

/// The values a pointer pattern selects: a JSON pointer whose `*` segments stand for every
/// element of an array (or value of an object). Strings as they are, numbers as written.
pub fn select(value: &serde_json::Value, pattern: &str) -> Vec<String> {
    let mut found = Vec::new();
    walk(
        value,
        pattern.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().as_slice(),
        &mut found,
    );
    found
}

fn walk(value: &serde_json::Value, segments: &[&str], found: &mut Vec<String>) {
    use serde_json::Value;
    let Some((first, rest)) = segments.split_first() else {
        match value {
            Value::String(s) => found.push(s.clone()),
            Value::Number(n) => found.push(n.to_string()),
            Value::Bool(b) => found.push(b.to_string()),
            _ => {}
        }
        return;
    };
    match (value, *first) {
        (Value::Array(items), "*") => items.iter().for_each(|v| walk(v, rest, found)),
        (Value::Object(map), "*") => map.values().for_each(|v| walk(v, rest, found)),
        (Value::Array(items), index) => {
            if let Some(v) = index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                walk(v, rest, found);
            }
        }
        (Value::Object(map), key) => {
            let key = key.replace("~1", "/").replace("~0", "~");
            if let Some(v) = map.get(&key) {
                walk(v, rest, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_patterns_select_every_element() {
        let body = serde_json::json!({ "items": [ { "key": "a" }, { "key": 7 }, { "other": 1 } ], "id": 42 });
        assert_eq!(select(&body, "/items/*/key"), vec!["a", "7"]);
        assert_eq!(select(&body, "/id"), vec!["42"]);
        assert_eq!(select(&body, "/items/1/key"), vec!["7"]);
        assert!(select(&body, "/missing").is_empty());
        let list = serde_json::json!([ { "consulta_id": "x" } ]);
        assert_eq!(select(&list, "/*/consulta_id"), vec!["x"]);
    }

    #[test]
    fn a_write_acknowledged_without_its_key_is_unknown() {
        let reply = Reply {
            kind: EntryType::Ok,
            status: Some(200),
            body: Some(serde_json::json!({ "id": 5 })),
            first_column: vec![],
            error: None,
        };
        let answer = write_answer(reply.clone(), Some("/id"));
        assert_eq!((answer.kind, answer.key.as_deref()), (EntryType::Ok, Some("5")));
        assert_eq!(write_answer(reply, Some("/nope")).kind, EntryType::Info);
    }

    #[test]
    fn a_failed_read_is_a_failure_whatever_the_client_said() {
        let reply = Reply {
            kind: EntryType::Info,
            status: None,
            body: None,
            first_column: vec![],
            error: Some("timeout".into()),
        };
        assert_eq!(read_answer(reply, None).kind, EntryType::Fail);
    }
}
