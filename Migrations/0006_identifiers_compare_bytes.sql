-- Identifiers are compared byte for byte.
--
-- The keys every payment and callback looks up or inserts — partner codes, payment references,
-- gateway transactions, webhook-ids, dossier codes, pay tokens, idempotency keys — are ASCII
-- tokens (their domains and checks refuse anything else), so their order under the database's
-- locale and their byte order are the same. PostgreSQL 15 still compares them through the
-- locale's collation routine unless the collation is "C" (even for "C.UTF-8"), and that was
-- most of the text comparison in the write paths' index searches and unique checks. Giving these
-- columns the "C" collation changes no result and no order; it makes each comparison a memcmp.
--
-- Also dropped: inbound_messages_reference_idx, which no query reads. Every callback paid for
-- it with an index insert. Messages about a reference are found through their intent
-- (intent_id) or, for orphans, through inbound_messages_orphan_idx.

DROP INDEX inbound_messages_reference_idx;

ALTER TABLE inbound_messages
    ALTER COLUMN partner_code TYPE partner_code COLLATE "C",
    ALTER COLUMN webhook_id TYPE webhook_message_id COLLATE "C";

ALTER TABLE payment_intents
    ALTER COLUMN partner_code TYPE partner_code COLLATE "C",
    ALTER COLUMN reference TYPE payment_reference COLLATE "C",
    ALTER COLUMN gateway_txn TYPE gateway_transaction COLLATE "C";

ALTER TABLE dossiers
    ALTER COLUMN code TYPE dossier_code COLLATE "C",
    ALTER COLUMN pay_token TYPE pay_token COLLATE "C";

ALTER TABLE idempotency_keys
    ALTER COLUMN key TYPE idempotency_key COLLATE "C";

ALTER TABLE outbox_notifications
    ALTER COLUMN message_id TYPE webhook_message_id COLLATE "C";

ALTER TABLE agencies
    ALTER COLUMN code TYPE text COLLATE "C";
