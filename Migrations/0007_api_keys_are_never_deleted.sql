-- API keys are never deleted; Idempotency-Keys refer to theirs without a foreign key.
--
-- Every intent creation inserts its Idempotency-Key row, and the foreign key to api_keys made
-- PostgreSQL share-lock the API key's row (SELECT … FOR KEY SHARE) for it — twice, since the same
-- transaction then points the key at its new intent. All of one client's concurrent requests lock
-- that same row, so every overlapping set of them needs a MultiXact, a WAL-logged list of lockers,
-- rebuilt as each one arrives. In Benchmarks/create-intent that check cost PostgreSQL about as much
-- as the checks against intents and dossiers together.
--
-- The reference stays sound without the constraint: a key is written only for the API key that
-- authenticated the request it belongs to, and API keys are revoked, never deleted — which the
-- triggers below now enforce for every row, referenced or not (an API key's id also appears in
-- intent events and the audit log as the actor).

ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_api_key_id_fkey;

CREATE FUNCTION forbid_deletion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are never deleted: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '42501';
END
$$;

CREATE TRIGGER api_keys_never_deleted BEFORE DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION forbid_deletion();
CREATE TRIGGER api_keys_no_truncate BEFORE TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_deletion();
