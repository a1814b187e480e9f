//! The schema, as numbered migrations applied in order and recorded in `pipe_schema`: a
//! database made by an older pipe is brought up to date, each step once, never edited after
//! release (a change is a new step).

use super::{Client, Error};

/// An arbitrary key for the advisory lock that makes agents starting together migrate one
/// after the other.
const LOCK: i64 = 0x7069_7065_5f73_6368; // "pipe_sch"

const MIGRATIONS: &[&str] = &[
    // 1: the store — runs, jobs, approvals, the append-only audit trail — per project.
    "
    CREATE TABLE projects (
        name TEXT PRIMARY KEY,
        last_run BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        project TEXT NOT NULL REFERENCES projects(name),
        id BIGINT NOT NULL,
        pipeline_name TEXT NOT NULL,
        pipeline_file TEXT NOT NULL,
        pipeline_sha256 TEXT NOT NULL,
        commit_sha TEXT,
        branch TEXT,
        tags JSONB NOT NULL DEFAULT '[]',
        changed_paths INTEGER,
        trigger TEXT NOT NULL,
        state TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        ended_at TIMESTAMPTZ,
        owner TEXT NOT NULL,
        releases INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project, id)
    );
    CREATE TABLE jobs (
        project TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        stage TEXT NOT NULL,
        phase TEXT NOT NULL,
        environment TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        exit_code BIGINT,
        duration_ms BIGINT,
        note TEXT,
        log TEXT NOT NULL DEFAULT '',
        artifacts JSONB NOT NULL DEFAULT '[]',
        findings JSONB,
        image JSONB,
        drift JSONB,
        finished_at TIMESTAMPTZ,
        PRIMARY KEY (project, run_id, name),
        FOREIGN KEY (project, run_id) REFERENCES runs(project, id)
    );
    CREATE TABLE approvals (
        project TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        approver TEXT NOT NULL,
        comment TEXT,
        at TIMESTAMPTZ NOT NULL,
        FOREIGN KEY (project, run_id) REFERENCES runs(project, id)
    );
    -- Approvers are counted case-insensitively, as the embedded store does.
    CREATE UNIQUE INDEX approvals_once ON approvals (project, run_id, lower(approver));
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        project TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    ",
    // 2: the fleet's queue — a run's jobs as rows, the needs between them, each claim as an
    // attempt, and the agents with the labels they offer.
    "
    CREATE TABLE fleet_jobs (
        id BIGSERIAL PRIMARY KEY,
        project TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        name TEXT NOT NULL,
        deploys BOOLEAN NOT NULL,
        labels TEXT[] NOT NULL DEFAULT '{}',
        unfinished_needs INTEGER NOT NULL,
        state TEXT NOT NULL,
        epoch BIGINT NOT NULL DEFAULT 0,
        agent TEXT,
        lease_until TIMESTAMPTZ,
        queued_at TIMESTAMPTZ,
        note TEXT,
        UNIQUE (project, run_id, name)
    );
    CREATE INDEX fleet_jobs_queued ON fleet_jobs (queued_at, id) WHERE state = 'queued';
    CREATE INDEX fleet_jobs_leased ON fleet_jobs (lease_until) WHERE state = 'claimed';
    CREATE TABLE fleet_needs (
        job BIGINT NOT NULL REFERENCES fleet_jobs(id),
        needs BIGINT NOT NULL REFERENCES fleet_jobs(id),
        PRIMARY KEY (needs, job)
    );
    CREATE TABLE fleet_attempts (
        job BIGINT NOT NULL REFERENCES fleet_jobs(id),
        epoch BIGINT NOT NULL,
        agent TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL,
        ended_at TIMESTAMPTZ,
        outcome TEXT,
        PRIMARY KEY (job, epoch)
    );
    CREATE TABLE fleet_agents (
        name TEXT PRIMARY KEY,
        labels TEXT[] NOT NULL,
        seen_at TIMESTAMPTZ NOT NULL
    );
    ",
    // 3: where each step of a run's progressive release stands.
    "
    CREATE TABLE release_steps (
        project TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        step INTEGER NOT NULL,
        name TEXT,
        percent INTEGER NOT NULL,
        status TEXT NOT NULL,
        detail TEXT,
        at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (project, run_id, step),
        FOREIGN KEY (project, run_id) REFERENCES runs(project, id)
    );
    ",
    // 4: the heads of the branches the fleet's leader polls, as it last saw them.
    "
    CREATE TABLE fleet_heads (
        repo TEXT NOT NULL,
        branch TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        PRIMARY KEY (repo, branch)
    );
    ",
    // 5: the claim of the fleet's queue whose outputs (log, artifacts) are a job's.
    "ALTER TABLE jobs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;",
];

/// The newest schema version this pipe knows.
#[cfg(test)]
pub(super) const LATEST: i32 = MIGRATIONS.len() as i32;

/// Applies the migrations this database lacks, in one transaction.
pub(super) fn run(client: &mut Client) -> Result<(), Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS pipe_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let done: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM pipe_schema", &[])?
        .get(0);
    for (version, sql) in (1..).zip(MIGRATIONS).skip(done.max(0) as usize) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO pipe_schema (version) VALUES ($1)", &[&version])?;
    }
    tx.commit()
}
