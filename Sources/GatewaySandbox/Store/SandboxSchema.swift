/// The sandbox's own tables, created idempotently at startup under an advisory lock. Times named
/// `*_at` without a unit are Unix seconds (wire times); `*_ms` columns are Unix milliseconds.
enum SandboxSchema {
    /// `pg_advisory_xact_lock` key: "FRSANDBX" as bytes.
    static let lockKey: Int64 = 0x4652_5341_4E44_4258

    static let sql = """
        CREATE TABLE IF NOT EXISTS sandbox_replies (
            partner      text   NOT NULL,
            webhook_id   text   NOT NULL,
            http_status  bigint NOT NULL,
            content_type text   NOT NULL,
            body         bytea  NOT NULL,
            created_ms   bigint NOT NULL,
            PRIMARY KEY (partner, webhook_id)
        );

        CREATE TABLE IF NOT EXISTS sandbox_payments (
            transaction_id text   PRIMARY KEY,
            partner        text   NOT NULL,
            reference      text   NOT NULL,
            request        text   NOT NULL,
            reply          bytea  NOT NULL,
            amount         bigint NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000),
            fee_amount     bigint NOT NULL CHECK (fee_amount >= 0),
            charge_amount  bigint NOT NULL CHECK (charge_amount >= 0),
            currency       text   NOT NULL,
            description    text   NOT NULL,
            dossier_code   text   NOT NULL,
            procedure_code text   NOT NULL,
            return_url     text   NOT NULL,
            notify_url     text   NOT NULL,
            bank           text   NOT NULL,
            requested_at   bigint NOT NULL,
            expires_at     bigint NOT NULL,
            created_ms     bigint NOT NULL,
            status         text   NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'succeeded', 'failed', 'reversed')),
            outcome        text   CHECK (outcome IN ('00', '24', '51', '11', '07')),
            outcome_at     bigint,
            later_status   text   CHECK (later_status IN ('succeeded', 'reversed')),
            later_at       bigint,
            timer_ms       bigint,
            timer_event    text,
            events_sent    bigint NOT NULL DEFAULT 0,
            UNIQUE (partner, reference),
            CHECK (fee_amount + charge_amount = amount),
            CHECK ((status = 'pending') = (outcome IS NULL))
        );
        CREATE INDEX IF NOT EXISTS sandbox_payments_timer ON sandbox_payments (timer_ms) WHERE timer_ms IS NOT NULL;
        CREATE INDEX IF NOT EXISTS sandbox_payments_outcome_at ON sandbox_payments (partner, outcome_at) WHERE outcome_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS sandbox_payments_later_at ON sandbox_payments (partner, later_at) WHERE later_at IS NOT NULL;

        CREATE TABLE IF NOT EXISTS sandbox_refunds (
            refund_id      text   PRIMARY KEY,
            partner        text   NOT NULL,
            request_id     text   NOT NULL,
            transaction_id text   NOT NULL REFERENCES sandbox_payments (transaction_id),
            request        text   NOT NULL,
            reply          bytea  NOT NULL,
            kind           text   NOT NULL CHECK (kind IN ('02', '03')),
            amount         bigint NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000),
            officer        text   NOT NULL,
            reason         text   NOT NULL,
            requested_at   bigint NOT NULL,
            created_ms     bigint NOT NULL,
            status         text   NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'rejected')),
            due_ms         bigint,
            due_status     text   CHECK (due_status IN ('completed', 'rejected')),
            outcome_at     bigint,
            UNIQUE (partner, request_id)
        );
        CREATE INDEX IF NOT EXISTS sandbox_refunds_due ON sandbox_refunds (due_ms) WHERE status = 'pending' AND due_ms IS NOT NULL;
        CREATE INDEX IF NOT EXISTS sandbox_refunds_payment ON sandbox_refunds (transaction_id);
        CREATE INDEX IF NOT EXISTS sandbox_refunds_outcome_at ON sandbox_refunds (partner, outcome_at);

        CREATE TABLE IF NOT EXISTS sandbox_callbacks (
            id             bigserial PRIMARY KEY,
            webhook_id     text    NOT NULL,
            partner        text    NOT NULL,
            transaction_id text    NOT NULL,
            reference      text    NOT NULL,
            refund_id      text,
            kind           text    NOT NULL CHECK (kind IN ('KETQUA', 'HOANTIEN')),
            result_code    text    NOT NULL,
            url            text    NOT NULL,
            body_prefix    text    NOT NULL,
            state          text    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
            attempts       bigint  NOT NULL DEFAULT 0,
            max_attempts   bigint  NOT NULL,
            interval_ms    bigint  NOT NULL,
            next_ms        bigint,
            tamper_first   boolean NOT NULL,
            faults         text    NOT NULL,
            is_duplicate   boolean NOT NULL,
            created_ms     bigint  NOT NULL,
            finished_ms    bigint
        );
        CREATE INDEX IF NOT EXISTS sandbox_callbacks_due ON sandbox_callbacks (next_ms) WHERE state = 'pending';
        CREATE INDEX IF NOT EXISTS sandbox_callbacks_payment ON sandbox_callbacks (transaction_id);

        CREATE TABLE IF NOT EXISTS sandbox_callback_attempts (
            id                bigserial PRIMARY KEY,
            callback_id       bigint  NOT NULL REFERENCES sandbox_callbacks (id),
            attempt           bigint  NOT NULL,
            webhook_timestamp bigint  NOT NULL,
            started_ms        bigint  NOT NULL,
            latency_ms        bigint  NOT NULL,
            http_status       bigint,
            result_code       text,
            outcome           text    NOT NULL,
            tampered          boolean NOT NULL
        );
        CREATE INDEX IF NOT EXISTS sandbox_callback_attempts_callback ON sandbox_callback_attempts (callback_id);
        """
}
