-- A replayed notification gets the whole retry schedule again, not only the attempts left of
-- the schedule it had used up: `schedule_start` is how many attempts had been made when the
-- current schedule began (0, or the count at the last replay), and the delay after an attempt is
-- looked up by the attempts made since then.
ALTER TABLE outbox_notifications
    ADD COLUMN schedule_start SMALLINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT outbox_notifications_schedule_start_check CHECK (schedule_start BETWEEN 0 AND attempts);
