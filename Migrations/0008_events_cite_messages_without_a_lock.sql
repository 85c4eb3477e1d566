-- Intent events cite the inbound message that caused them without a foreign key.
--
-- Every applied callback writes its raw message and then the intent's event, which names that
-- message. The foreign key made PostgreSQL check each such event with SELECT … FOR KEY SHARE on
-- the message just inserted: a row lock written into that new tuple, and logged to the WAL, for
-- every callback. In Benchmarks/callback-ingest (STATEMENTS=1) that check took 33 µs per
-- callback, about a tenth of what PostgreSQL spends on one, and more than the checks of the same
-- events against their intents, whose rows the transaction has already locked.
--
-- The reference stays sound without it: the id an event names is the one its message's insert
-- returned in the same transaction, and inbound messages are append-only since 0001 (triggers
-- refuse UPDATE, DELETE and TRUNCATE), so a message, once committed, exists for good. The other
-- references of intent events, outbox rows and exceptions keep their foreign keys.

ALTER TABLE intent_events DROP CONSTRAINT intent_events_inbound_message_id_fkey;
