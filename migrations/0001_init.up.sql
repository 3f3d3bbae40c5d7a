-- dispatch schema v1: users, tasks, idempotency keys, task attempts.
-- Ids are UUIDs as BINARY(16) (new ones v7, time-ordered: inserts stay append-mostly).
-- Times are DATETIME(6) in UTC: every dispatch session sets time_zone = '+00:00'.

CREATE TABLE users (
    id            BINARY(16)   NOT NULL,
    email         VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE tasks (
    id           BINARY(16)    NOT NULL,
    user_id      BINARY(16)    NULL,
    type         VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    status       ENUM('PENDING','QUEUED','RUNNING','RETRYING','SUCCEEDED','DEAD','CANCELED') NOT NULL,
    priority     SMALLINT      NOT NULL DEFAULT 0,
    attempts     INT           NOT NULL DEFAULT 0,
    max_attempts INT           NOT NULL DEFAULT 5,
    timeout_ms   INT           NULL,
    payload      MEDIUMTEXT    NOT NULL,
    result       MEDIUMTEXT    NULL,
    last_error   TEXT          NULL,
    ordering_key VARCHAR(255)  NULL,
    callback_url VARCHAR(2048) NULL,
    traceparent  CHAR(55)      CHARACTER SET ascii COLLATE ascii_bin NULL,
    worker_id    VARCHAR(128)  NULL,
    lease_until  DATETIME(6)   NULL,
    created_at   DATETIME(6)   NOT NULL,
    updated_at   DATETIME(6)   NOT NULL,
    run_at       DATETIME(6)   NULL,
    started_at   DATETIME(6)   NULL,
    finished_at  DATETIME(6)   NULL,
    PRIMARY KEY (id),
    -- the caller's tasks, newest first (ids are time-ordered): keyset pagination
    KEY ix_tasks_user_id (user_id, id),
    -- the outbox relay (PENDING rows by age) and the DLQ listing (DEAD rows)
    KEY ix_tasks_status_created (status, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE idempotency_keys (
    user_id       BINARY(16)   NOT NULL,
    method        VARCHAR(8)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    route         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    idem_key      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    fingerprint   BINARY(32)   NOT NULL,
    task_id       BINARY(16)   NULL,
    response_code SMALLINT     NULL,
    response_body MEDIUMTEXT   NULL,
    created_at    DATETIME(6)  NOT NULL,
    expires_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, method, route, idem_key),
    KEY ix_idempotency_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE task_attempts (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    task_id     BINARY(16)   NOT NULL,
    attempt     INT          NOT NULL,
    worker_id   VARCHAR(128) NOT NULL,
    started_at  DATETIME(6)  NOT NULL,
    finished_at DATETIME(6)  NULL,
    outcome     ENUM('running','succeeded','failed','timeout','permanent','lease_expired','replayed') NOT NULL,
    error       TEXT         NULL,
    PRIMARY KEY (id),
    KEY ix_task_attempts_task (task_id, attempt)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
