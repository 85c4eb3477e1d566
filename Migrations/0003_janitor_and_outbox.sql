-- Callbacks that survive anything: the janitor's query schedule for open intents, and the outbox
-- of signed "dossier paid" notifications to the one-stop system with every delivery attempt.

-- When the janitor next asks the gateway about an open intent, and how many times it has asked.
-- NULL once the intent is final or the schedule ran out (then a person decides).
ALTER TABLE payment_intents
    ADD COLUMN next_check_at TIMESTAMPTZ,
    ADD COLUMN checks_done SMALLINT NOT NULL DEFAULT 0 CHECK (checks_done >= 0);
CREATE INDEX payment_intents_due_idx ON payment_intents (next_check_at)
    WHERE next_check_at IS NOT NULL AND status IN ('created', 'pending', 'unknown');

-- Where an agency's one-stop system wants to hear about paid dossiers.
ALTER TABLE agencies
    ADD COLUMN notify_url TEXT CHECK (notify_url ~ '^https?://[^[:space:]]+$' AND length(notify_url) <= 2048);

-- A notification to the one-stop system, written in the same transaction as the payment that
-- caused it and delivered by the outbox worker until the receiver answers 2xx. The message id
-- (webhook-id) stays the same across retries so the receiver can deduplicate.
CREATE TABLE outbox_notifications (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id        BIGINT NOT NULL REFERENCES agencies (id),
    dossier_id       BIGINT NOT NULL REFERENCES dossiers (id),
    intent_id        UUID REFERENCES payment_intents (id),
    event            TEXT NOT NULL CHECK (event IN ('dossier.paid')),
    message_id       TEXT NOT NULL UNIQUE CHECK (message_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    payload          BYTEA NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         SMALLINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMPTZ,
    last_http_status SMALLINT,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ,
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX outbox_due_idx ON outbox_notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_agency_idx ON outbox_notifications (agency_id, status, created_at);

-- Every delivery attempt of a notification, as it happened. Append-only.
CREATE TABLE outbox_attempts (
    notification_id BIGINT NOT NULL REFERENCES outbox_notifications (id),
    attempt         SMALLINT NOT NULL CHECK (attempt >= 1),
    started_at      TIMESTAMPTZ NOT NULL,
    duration_ms     INTEGER NOT NULL CHECK (duration_ms >= 0),
    http_status     SMALLINT,
    error           TEXT,
    PRIMARY KEY (notification_id, attempt)
);
CREATE TRIGGER outbox_attempts_append_only BEFORE UPDATE OR DELETE ON outbox_attempts
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();
CREATE TRIGGER outbox_attempts_no_truncate BEFORE TRUNCATE ON outbox_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_modification();
