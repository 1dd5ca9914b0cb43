-- Software template runs (Backstage's `tasks` and `task_events`). A task's status moves
-- open -> processing -> completed | failed | cancelled; retry moves it back to open.
CREATE TABLE scaffolder_tasks (
    id TEXT PRIMARY KEY NOT NULL,
    -- The TaskSpec, JSON.
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    -- Milliseconds since the epoch.
    created_at BIGINT NOT NULL,
    last_heartbeat_at BIGINT,
    created_by TEXT,
    -- Sealed (encrypted) JSON map of secrets; cleared when the task ends.
    secrets TEXT,
    -- JSON: checkpoints of finished side effects, so a retried run can skip them.
    state TEXT
);
CREATE INDEX scaffolder_tasks_status ON scaffolder_tasks (status, created_at);
CREATE INDEX scaffolder_tasks_created_by ON scaffolder_tasks (created_by);

CREATE TABLE scaffolder_task_events (
    id BIGSERIAL PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES scaffolder_tasks (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    -- JSON object.
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX scaffolder_task_events_task ON scaffolder_task_events (task_id, id);
