-- FeeRecon's first schema: agencies, dossiers and their fee lines, payment intents with their
-- append-only events, the raw store of inbound gateway messages, and the audit log.
-- Money is BIGINT đồng everywhere. Exactly-once effects are unique keys here, not in-process state.

-- Raised by the triggers that keep history tables append-only.
CREATE FUNCTION forbid_modification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '42501';
END
$$;

-- An agency (đơn vị) whose dossiers are paid through the service, under the portal partner code
-- (MaDoiTac) of its province system.
CREATE TABLE agencies (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code         TEXT NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9]+(\.[A-Z0-9]+)+$' AND length(code) <= 64),
    name         TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    partner_code TEXT NOT NULL CHECK (partner_code ~ '^[A-Za-z0-9]{1,16}$'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A procedure dossier (hồ sơ) and what is due for it. Its status is derived from what is due and
-- what succeeded payments brought in, so it can never disagree with them.
CREATE TABLE dossiers (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code           TEXT NOT NULL UNIQUE
                   CHECK (code ~ '^[A-Z0-9]+(\.[A-Z0-9]+)+-[0-9]{6}-[0-9]{4}$' AND length(code) <= 76),
    agency_id      BIGINT NOT NULL REFERENCES agencies (id),
    procedure_code TEXT NOT NULL CHECK (length(procedure_code) BETWEEN 1 AND 64),
    procedure_name TEXT NOT NULL CHECK (char_length(procedure_name) BETWEEN 1 AND 200),
    applicant_name TEXT NOT NULL CHECK (char_length(applicant_name) BETWEEN 1 AND 200),
    amount_due     BIGINT NOT NULL CHECK (amount_due BETWEEN 1 AND 1000000000000),
    amount_paid    BIGINT NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    status         TEXT NOT NULL GENERATED ALWAYS AS (
                       CASE WHEN amount_paid < amount_due THEN 'awaiting_payment'
                            WHEN amount_paid = amount_due THEN 'paid'
                            ELSE 'overpaid' END) STORED,
    -- The secret part of the citizen's pay link.
    pay_token      TEXT NOT NULL UNIQUE CHECK (length(pay_token) >= 32),
    -- Set when the first payment succeeds; from then on the fee lines cannot change.
    fees_frozen_at TIMESTAMPTZ,
    version        INTEGER NOT NULL DEFAULT 1,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dossiers_agency_idx ON dossiers (agency_id, created_at);

-- The fee lines of a dossier; kind 'fee' is phí (wire 1), 'charge' is lệ phí (wire 2).
CREATE TABLE dossier_fee_lines (
    dossier_id BIGINT NOT NULL REFERENCES dossiers (id) ON DELETE CASCADE,
    line_no    SMALLINT NOT NULL CHECK (line_no BETWEEN 1 AND 50),
    kind       TEXT NOT NULL CHECK (kind IN ('fee', 'charge')),
    code       TEXT NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    name       TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    amount     BIGINT NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000),
    PRIMARY KEY (dossier_id, line_no)
);

-- At commit, a dossier's amount due must equal the sum of its fee lines.
CREATE FUNCTION check_dossier_total() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    target BIGINT;
    due BIGINT;
    total BIGINT;
BEGIN
    IF TG_TABLE_NAME = 'dossiers' THEN
        target := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        target := OLD.dossier_id;
    ELSE
        target := NEW.dossier_id;
    END IF;
    SELECT amount_due INTO due FROM dossiers WHERE id = target;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(sum(amount), 0) INTO total FROM dossier_fee_lines WHERE dossier_id = target;
    IF total <> due THEN
        RAISE EXCEPTION 'dossier % amount due % differs from its fee lines total %', target, due, total
            USING ERRCODE = '23514', CONSTRAINT = 'dossier_total_matches_fee_lines';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER dossier_total_matches_fee_lines
    AFTER INSERT OR UPDATE OF amount_due ON dossiers
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_dossier_total();
CREATE CONSTRAINT TRIGGER fee_lines_total_matches_dossier
    AFTER INSERT OR UPDATE OR DELETE ON dossier_fee_lines
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_dossier_total();

-- One payment attempt for a dossier at the gateway. Committed as 'created' before the gateway is
-- called; the exact create request body is kept so that a retry resends the same bytes.
CREATE TABLE payment_intents (
    id              UUID PRIMARY KEY,
    partner_code    TEXT NOT NULL CHECK (partner_code ~ '^[A-Za-z0-9]{1,16}$'),
    reference       TEXT NOT NULL CHECK (reference ~ '^[A-Za-z0-9]{1,20}$'),
    dossier_id      BIGINT NOT NULL REFERENCES dossiers (id),
    amount          BIGINT NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000),
    status          TEXT NOT NULL CHECK (status IN (
                        'created', 'pending', 'unknown', 'succeeded', 'failed', 'expired', 'cancelled',
                        'refund_pending', 'refunded', 'partially_refunded')),
    gateway_txn     TEXT CHECK (length(gateway_txn) BETWEEN 1 AND 64),
    checkout_url    TEXT CHECK (length(checkout_url) <= 2048),
    expires_at      TIMESTAMPTZ,
    create_request  BYTEA,
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    bank_code       TEXT CHECK (length(bank_code) <= 32),
    paid_at         TIMESTAMPTZ,
    needs_review    BOOLEAN NOT NULL DEFAULT false,
    review_reason   TEXT,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (partner_code, reference),
    CHECK (amount_refunded BETWEEN 0 AND amount),
    CHECK (needs_review = (review_reason IS NOT NULL))
);
CREATE UNIQUE INDEX payment_intents_gateway_txn_key ON payment_intents (partner_code, gateway_txn);
CREATE INDEX payment_intents_dossier_idx ON payment_intents (dossier_id);
-- A dossier has at most one open intent at a time.
CREATE UNIQUE INDEX payment_intents_one_open_per_dossier ON payment_intents (dossier_id)
    WHERE status IN ('created', 'pending', 'unknown');
CREATE INDEX payment_intents_review_idx ON payment_intents (updated_at) WHERE needs_review;

-- Every verified message the gateway sent, stored raw (headers and exact body bytes) in the same
-- transaction that acts on it, with the exact reply body it was answered with. A webhook-id has at
-- most one final answer (00, 02, 03, 04, 94, 95), which is replayed byte for byte to a retry;
-- after 01 or 99 a retry is processed afresh and stored again.
CREATE TABLE inbound_messages (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_code TEXT NOT NULL CHECK (partner_code ~ '^[A-Za-z0-9]{1,16}$'),
    webhook_id   TEXT NOT NULL CHECK (webhook_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    message_type TEXT NOT NULL CHECK (length(message_type) BETWEEN 1 AND 32),
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    headers      JSONB NOT NULL,
    body         BYTEA NOT NULL CHECK (length(body) <= 65536),
    reference    TEXT,
    intent_id    UUID REFERENCES payment_intents (id),
    result_code  TEXT NOT NULL CHECK (result_code ~ '^[0-9]{2}$'),
    reply_body   BYTEA NOT NULL,
    is_final     BOOLEAN NOT NULL GENERATED ALWAYS AS (result_code IN ('00', '02', '03', '04', '94', '95')) STORED
);
CREATE UNIQUE INDEX inbound_messages_final_once ON inbound_messages (partner_code, webhook_id) WHERE is_final;
CREATE INDEX inbound_messages_webhook_idx ON inbound_messages (partner_code, webhook_id);
CREATE INDEX inbound_messages_reference_idx ON inbound_messages (partner_code, reference);
CREATE INDEX inbound_messages_orphan_idx ON inbound_messages (received_at) WHERE intent_id IS NULL;
CREATE TRIGGER inbound_messages_append_only BEFORE UPDATE OR DELETE ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();
CREATE TRIGGER inbound_messages_no_truncate BEFORE TRUNCATE ON inbound_messages
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_modification();

-- Every change of a payment intent: what changed, from what, and why (which message, query,
-- settlement row or officer). Append-only.
CREATE TABLE intent_events (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    intent_id          UUID NOT NULL REFERENCES payment_intents (id),
    kind               TEXT NOT NULL CHECK (kind ~ '^[a-z_]{1,64}$'),
    from_status        TEXT,
    to_status          TEXT NOT NULL,
    source             TEXT NOT NULL CHECK (source IN (
                           'api', 'citizen', 'gateway_reply', 'callback', 'query', 'settlement', 'officer', 'system')),
    inbound_message_id BIGINT REFERENCES inbound_messages (id),
    actor              TEXT,
    detail             JSONB NOT NULL DEFAULT '{}'::jsonb,
    occurred_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX intent_events_intent_idx ON intent_events (intent_id, id);
CREATE TRIGGER intent_events_append_only BEFORE UPDATE OR DELETE ON intent_events
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();
CREATE TRIGGER intent_events_no_truncate BEFORE TRUNCATE ON intent_events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_modification();

-- Every action of an officer, an API client or an operator. It cannot be updated or deleted.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('officer', 'api_key', 'operator', 'system')),
    actor_id    TEXT NOT NULL CHECK (length(actor_id) BETWEEN 1 AND 128),
    action      TEXT NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]{0,63}$'),
    agency_id   BIGINT REFERENCES agencies (id),
    subject     TEXT,
    reason      TEXT,
    detail      JSONB NOT NULL DEFAULT '{}'::jsonb,
    request_id  TEXT
);
CREATE INDEX audit_log_agency_idx ON audit_log (agency_id, occurred_at);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION forbid_modification();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_modification();
