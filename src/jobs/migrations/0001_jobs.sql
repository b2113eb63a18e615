-- Every job of the library, shared by the hosts that work on it. `record` is the job's job.json;
-- the other columns are what hosts query and lock. A host holds a job while `lease_until` is in
-- the future and renews the lease as it runs.
CREATE TABLE liveup_jobs (
    id          text PRIMARY KEY,
    record      jsonb NOT NULL,
    state       text NOT NULL,
    priority    smallint NOT NULL,
    stand_in    boolean NOT NULL DEFAULT false,
    created_at  bigint NOT NULL,
    holder      text,
    lease_until timestamptz
);

CREATE INDEX liveup_jobs_to_claim ON liveup_jobs (priority, created_at)
    WHERE state IN ('queued', 'running') AND NOT stand_in;

-- Each change of a job (not a lease renewal) wakes every host listening.
CREATE FUNCTION liveup_job_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('liveup_jobs', NEW.id);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER liveup_job_changed
    AFTER INSERT OR UPDATE OF record, holder ON liveup_jobs
    FOR EACH ROW EXECUTE FUNCTION liveup_job_changed();
