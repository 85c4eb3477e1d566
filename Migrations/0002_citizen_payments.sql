-- Citizens pay: API keys of the one-stop dossier system scoped to agencies, idempotency keys of
-- intent creation, and the exceptions queue that flagged payments open for a person to resolve.

-- An API key of the one-stop system. Only the SHA-256 of its secret part is stored; the prefix
-- finds the row without revealing anything.
CREATE TABLE api_keys (
    id            UUID PRIMARY KEY,
    prefix        TEXT NOT NULL UNIQUE CHECK (prefix ~ '^[A-Za-z0-9]{8,16}$'),
    secret_sha256 BYTEA NOT NULL CHECK (length(secret_sha256) = 32),
    name          TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at    TIMESTAMPTZ
);

-- The agencies an API key may act for; a key sees nothing of any other agency.
CREATE TABLE api_key_agencies (
    api_key_id UUID NOT NULL REFERENCES api_keys (id),
    agency_id  BIGINT NOT NULL REFERENCES agencies (id),
    PRIMARY KEY (api_key_id, agency_id)
);

-- An Idempotency-Key of intent creation, scoped per API key: the same key with the same request
-- gets the original response; with another request, 409. Kept at least 24 hours.
CREATE TABLE idempotency_keys (
    api_key_id      UUID NOT NULL REFERENCES api_keys (id),
    key             TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256  BYTEA NOT NULL CHECK (length(request_sha256) = 32),
    intent_id       UUID REFERENCES payment_intents (id),
    response_status SMALLINT,
    response_body   BYTEA,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at    TIMESTAMPTZ,
    PRIMARY KEY (api_key_id, key),
    CHECK ((response_status IS NULL) = (response_body IS NULL))
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Something a person must look at and resolve with a reason: a payment whose amount differs, a
-- success after expiry, an overpaid dossier that needs a refund, a callback for a reference we
-- never issued. An exception of a kind stays open once per subject until resolved.
CREATE TABLE exceptions (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind ~ '^[a-z_]{1,64}$'),
    status             TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    agency_id          BIGINT REFERENCES agencies (id),
    dossier_id         BIGINT REFERENCES dossiers (id),
    intent_id          UUID REFERENCES payment_intents (id),
    inbound_message_id BIGINT REFERENCES inbound_messages (id),
    amount             BIGINT CHECK (amount >= 0),
    detail             JSONB NOT NULL DEFAULT '{}'::jsonb,
    opened_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at        TIMESTAMPTZ,
    resolved_by        TEXT,
    resolution         TEXT,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL AND resolved_by IS NOT NULL AND resolution IS NOT NULL))
);
CREATE UNIQUE INDEX exceptions_open_once_per_intent ON exceptions (kind, intent_id)
    WHERE status = 'open' AND intent_id IS NOT NULL;
CREATE UNIQUE INDEX exceptions_open_once_per_dossier ON exceptions (kind, dossier_id)
    WHERE status = 'open' AND intent_id IS NULL AND dossier_id IS NOT NULL;
CREATE INDEX exceptions_open_idx ON exceptions (agency_id, opened_at) WHERE status = 'open';
