//! Software template runs: `scaffolder_tasks` and their events, `scaffolder_task_events`.
//!
//! Every change of a task's status and the event that announces it are written in one
//! transaction, so a reader of the events never sees a task end without its completion event.

use crate::{dispatch, now_millis, transaction, Result, Store};

/// A stored task, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    /// The TaskSpec, JSON text.
    pub spec: String,
    /// `open`, `processing`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub last_heartbeat_at: Option<i64>,
    pub created_by: Option<String>,
    /// Checkpoints, JSON text.
    pub state: Option<String>,
}

/// A task just claimed by a worker, with its sealed secrets.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub task: TaskRow,
    pub secrets: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    spec: String,
    status: String,
    created_at: i64,
    last_heartbeat_at: Option<i64>,
    created_by: Option<String>,
    state: Option<String>,
    secrets: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskEventRow {
    /// Grows with every event of every task.
    pub id: i64,
    pub task_id: String,
    /// `log`, `completion`, `cancelled` or `recovered`.
    pub event_type: String,
    /// JSON object text.
    pub body: String,
    pub created_at: i64,
}

/// Which tasks `list_tasks` returns, in which order.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Any of these creators (empty: any).
    pub created_by: Vec<String>,
    /// Any of these statuses (empty: any).
    pub status: Vec<String>,
    /// `(column, descending)`; columns are checked by `TaskQuery::column`.
    pub order: Vec<(&'static str, bool)>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl TaskQuery {
    /// The column a client may order by, from the API's field name.
    pub fn column(field: &str) -> Option<&'static str> {
        Some(match field {
            "id" => "id",
            "created_at" | "createdAt" => "created_at",
            "created_by" | "createdBy" => "created_by",
            "status" => "status",
            "last_heartbeat_at" | "lastHeartbeatAt" => "last_heartbeat_at",
            _ => return None,
        })
    }
}

/// What `recover_tasks` did to one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Back to `open`, with a `recovered` event: the run starts over.
    Reopened(String),
    /// Ended `failed`, with a completion event saying why.
    Failed(String),
}

/// Appends one event: task id, type, body, time. Evaluates to the event's id.
const INSERT_EVENT: &str = "INSERT INTO scaffolder_task_events (task_id, event_type, body, created_at)
     VALUES ($1, $2, $3, $4) RETURNING id";

const TASK_COLUMNS: &str = "id, spec, status, created_at, last_heartbeat_at, created_by, state";

impl Store {
    /// Stores a new task with status `open`.
    pub async fn create_task(
        &self,
        id: &str,
        spec: &str,
        created_by: Option<&str>,
        secrets: Option<&str>,
    ) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO scaffolder_tasks (id, spec, status, created_at, created_by, secrets)
                 VALUES ($1, $2, 'open', $3, $4, $5)",
            )
            .bind(id)
            .bind(spec)
            .bind(now_millis())
            .bind(created_by)
            .bind(secrets)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Takes the oldest open task: it becomes `processing` with a fresh heartbeat. Replicas
    /// never take the same task (`SKIP LOCKED` on PostgreSQL; one writer at a time on SQLite).
    pub async fn claim_task(&self) -> Result<Option<ClaimedTask>> {
        let lock = if self.is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE scaffolder_tasks SET status = 'processing', last_heartbeat_at = $1
             WHERE id = (SELECT id FROM scaffolder_tasks WHERE status = 'open'
                         ORDER BY created_at, id LIMIT 1{lock})
             AND status = 'open'
             RETURNING {TASK_COLUMNS}, secrets"
        );
        let row: Option<ClaimedRow> = dispatch!(self, pool => {
            sqlx::query_as(&sql).bind(now_millis()).fetch_optional(pool).await?
        });
        Ok(row.map(|row| ClaimedTask {
            task: TaskRow {
                id: row.id,
                spec: row.spec,
                status: row.status,
                created_at: row.created_at,
                last_heartbeat_at: row.last_heartbeat_at,
                created_by: row.created_by,
                state: row.state,
            },
            secrets: row.secrets,
        }))
    }

    /// Marks running tasks as alive.
    pub async fn heartbeat_tasks(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        dispatch!(self, pool => {
            for id in ids {
                sqlx::query(
                    "UPDATE scaffolder_tasks SET last_heartbeat_at = $1 WHERE id = $2 AND status = 'processing'",
                )
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
            }
        });
        Ok(())
    }

    /// Appends an event; evaluates to its id.
    pub async fn append_task_event(&self, task_id: &str, event_type: &str, body: &str) -> Result<i64> {
        let (id,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as(INSERT_EVENT).bind(task_id).bind(event_type).bind(body).bind(now_millis()).fetch_one(pool).await?
        });
        Ok(id)
    }

    /// Ends a task: sets its final status, forgets its secrets and appends the event that says
    /// so, in one transaction. Evaluates to false when the task had already ended.
    pub async fn finish_task(
        &self,
        task_id: &str,
        status: &str,
        event_type: &str,
        body: &str,
    ) -> Result<bool> {
        self.end_task(task_id, "status IN ('open', 'processing')", status, event_type, body).await
    }

    /// Cancels a task no worker has claimed yet, with its completion event, in one transaction.
    /// False when a worker claimed it first (or it had ended): cancelling is then the worker's.
    pub async fn cancel_open_task(&self, task_id: &str, body: &str) -> Result<bool> {
        self.end_task(task_id, "status = 'open'", "cancelled", "completion", body).await
    }

    async fn end_task(
        &self,
        task_id: &str,
        from: &str,
        status: &str,
        event_type: &str,
        body: &str,
    ) -> Result<bool> {
        let now = now_millis();
        let sql = format!(
            "UPDATE scaffolder_tasks SET status = $1, secrets = NULL, last_heartbeat_at = $2 WHERE id = $3 AND {from}"
        );
        let finished = transaction!(self, tx => {
            let updated = sqlx::query(&sql).bind(status).bind(now).bind(task_id).execute(&mut *tx).await?.rows_affected();
            if updated > 0 {
                sqlx::query(INSERT_EVENT).bind(task_id).bind(event_type).bind(body).bind(now).execute(&mut *tx).await?;
            }
            updated > 0
        });
        Ok(finished)
    }

    /// Stores a running task's checkpoints.
    pub async fn save_task_state(&self, task_id: &str, state: &str) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE scaffolder_tasks SET state = $1 WHERE id = $2")
                .bind(state)
                .bind(task_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn task(&self, task_id: &str) -> Result<Option<TaskRow>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM scaffolder_tasks WHERE id = $1");
        let row = dispatch!(self, pool => {
            sqlx::query_as(&sql).bind(task_id).fetch_optional(pool).await?
        });
        Ok(row)
    }

    /// Tasks matching `query`, and how many match in all (ignoring limit and offset).
    pub async fn list_tasks(&self, query: &TaskQuery) -> Result<(Vec<TaskRow>, i64)> {
        let mut conditions = Vec::new();
        let mut binds: Vec<&str> = Vec::new();
        for (column, values) in [("created_by", &query.created_by), ("status", &query.status)] {
            if values.is_empty() {
                continue;
            }
            let first = binds.len() + 1;
            let list = crate::placeholders(values.len(), first);
            conditions.push(format!("{column} IN ({list})"));
            binds.extend(values.iter().map(String::as_str));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let mut order: Vec<String> = query
            .order
            .iter()
            .map(|(column, descending)| format!("{column} {}", if *descending { "DESC" } else { "ASC" }))
            .collect();
        if order.is_empty() {
            order.push("created_at DESC".to_owned());
        }
        order.push("id ASC".to_owned());
        let limit = query.limit.unwrap_or(i64::MAX);
        let offset = query.offset.unwrap_or(0);
        let rows_sql = format!(
            "SELECT {TASK_COLUMNS} FROM scaffolder_tasks{filter} ORDER BY {} LIMIT {limit} OFFSET {offset}",
            order.join(", ")
        );
        let count_sql = format!("SELECT COUNT(*) FROM scaffolder_tasks{filter}");
        let (rows, total) = dispatch!(self, pool => {
            let mut rows_query = sqlx::query_as::<_, TaskRow>(&rows_sql);
            let mut count_query = sqlx::query_as::<_, (i64,)>(&count_sql);
            for value in &binds {
                rows_query = rows_query.bind(*value);
                count_query = count_query.bind(*value);
            }
            let rows = rows_query.fetch_all(pool).await?;
            let (total,) = count_query.fetch_one(pool).await?;
            (rows, total)
        });
        Ok((rows, total))
    }

    /// A task's events after event id `after`, oldest first.
    pub async fn task_events(&self, task_id: &str, after: i64) -> Result<Vec<TaskEventRow>> {
        let rows = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, task_id, event_type, body, created_at FROM scaffolder_task_events
                 WHERE task_id = $1 AND id > $2 ORDER BY id",
            )
            .bind(task_id)
            .bind(after)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Sets a failed or cancelled task back to `open` with new sealed secrets, and removes the
    /// events that ended it, so event streams continue. False when the task is not in such a state.
    pub async fn reopen_task(&self, task_id: &str, secrets: Option<&str>) -> Result<bool> {
        let reopened = transaction!(self, tx => {
            let updated = sqlx::query(
                "UPDATE scaffolder_tasks SET status = 'open', secrets = $1, last_heartbeat_at = NULL
                 WHERE id = $2 AND status IN ('failed', 'cancelled')",
            )
            .bind(secrets)
            .bind(task_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated > 0 {
                sqlx::query(
                    "DELETE FROM scaffolder_task_events
                     WHERE task_id = $1 AND event_type IN ('completion', 'cancelled')",
                )
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            }
            updated > 0
        });
        Ok(reopened)
    }

    /// Deals with tasks left `processing` by a worker that stopped (its heartbeat is older than
    /// `stale_ms`): those whose id `start_over` accepts go back to `open` with a `recovered`
    /// event; the others end `failed` with a completion event carrying `message`.
    pub async fn recover_tasks(
        &self,
        stale_ms: i64,
        start_over: impl Fn(&TaskRow) -> bool,
        message: &str,
    ) -> Result<Vec<Recovery>> {
        let before = now_millis() - stale_ms;
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM scaffolder_tasks
             WHERE status = 'processing' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < $1)"
        );
        let stale: Vec<TaskRow> = dispatch!(self, pool => {
            sqlx::query_as(&sql).bind(before).fetch_all(pool).await?
        });
        let mut recovered = Vec::new();
        for task in stale {
            if start_over(&task) {
                let now = now_millis();
                let reopened = transaction!(self, tx => {
                    let updated = sqlx::query(
                        "UPDATE scaffolder_tasks SET status = 'open', last_heartbeat_at = NULL, state = NULL
                         WHERE id = $1 AND status = 'processing' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < $2)",
                    )
                    .bind(&task.id)
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if updated > 0 {
                        sqlx::query(INSERT_EVENT)
                            .bind(&task.id)
                            .bind("recovered")
                            .bind(r#"{"message":"Task was recovered after the server stopped while running it; it starts over"}"#)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    updated > 0
                });
                if reopened {
                    recovered.push(Recovery::Reopened(task.id));
                }
            } else {
                let body = serde_json::json!({
                    "message": "Run completed with status: failed",
                    "error": { "name": "Error", "message": message },
                })
                .to_string();
                if self.finish_task(&task.id, "failed", "completion", &body).await? {
                    recovered.push(Recovery::Failed(task.id));
                }
            }
        }
        Ok(recovered)
    }
}
