-- dispatch schema v2: the DLQ audit trail.
-- `dispatchctl dlq purge` deletes DEAD tasks (and their task_attempts rows) only after
-- copying what identifies each one here, in the same transaction, so nothing leaves
-- the dead-letter queue without a record of who removed it and when (SPEC §4, §6).
-- Replays need no row here: each one is a task_attempts row with outcome 'replayed'.

CREATE TABLE dlq_audit (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    action      ENUM('purge')  NOT NULL,
    actor       VARCHAR(128)   NOT NULL,
    at          DATETIME(6)    NOT NULL,
    task_id     BINARY(16)     NOT NULL,
    user_id     BINARY(16)     NULL,
    type        VARCHAR(64)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    attempts    INT            NOT NULL,
    last_error  TEXT           NULL,
    traceparent CHAR(55)       CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at  DATETIME(6)    NOT NULL,
    finished_at DATETIME(6)    NULL,
    PRIMARY KEY (id),
    KEY ix_dlq_audit_task (task_id),
    KEY ix_dlq_audit_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
