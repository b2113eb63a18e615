//! Several hosts, one library: the jobs in PostgreSQL (`database_url`), next to their job.json
//! files in the shared `hls_root`. A host runs a job only while it holds it: a queued job is
//! claimed by one host with a free slot (`FOR UPDATE SKIP LOCKED`), under a lease the host renews
//! while it runs; a job whose host died is claimed again once its lease has run out, and resumed
//! from its first missing segment. Hosts wake each other through LISTEN/NOTIFY: a job changed
//! (`liveup_jobs`, sent by a trigger), a segment landed (`liveup_segments`), a viewer on another
//! host wants a segment or a job cancelled (`liveup_wants`).
//!
//! The manager's threads are not async: each call blocks on this store's own small runtime.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::Row;

use super::store::{write_job_file, JobStore};
use super::{JobRecord, JobState, Priority};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/jobs/migrations");

const JOBS_CHANNEL: &str = "liveup_jobs";
const SEGMENTS_CHANNEL: &str = "liveup_segments";
const WANTS_CHANNEL: &str = "liveup_wants";

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("cannot reach the database: {0}")]
    Connect(sqlx::Error),
    #[error("cannot bring the database's tables up to date: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("{0}")]
    Runtime(io::Error),
}

/// What another host said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Job `job` changed in the database.
    Job { job: String },
    /// The host running `job` moved segment `index` into place.
    Segment { job: String, index: u32 },
    /// A viewer of `job` on `from` asked for segment `index` (None: a playlist).
    Want {
        job: String,
        index: Option<u32>,
        viewer: String,
        from: String,
    },
    /// Someone asked `from` to cancel `job`.
    Cancel { job: String, from: String },
}

/// A job as the database has it, with the host holding it (if its lease runs).
#[derive(Debug, Clone)]
pub struct Held {
    pub record: JobRecord,
    pub holder: Option<String>,
}

pub struct SharedStore {
    runtime: tokio::runtime::Runtime,
    pool: PgPool,
    host: String,
    lease: Duration,
    hls_root: PathBuf,
}

impl SharedStore {
    /// Connects, and brings the tables up to date (the migrations ship inside the binary).
    pub fn connect(
        url: &str,
        host: &str,
        lease: Duration,
        hls_root: &Path,
    ) -> Result<SharedStore, SharedError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("shared-store")
            .enable_all()
            .build()
            .map_err(SharedError::Runtime)?;
        let pool = runtime
            .block_on(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url),
            )
            .map_err(SharedError::Connect)?;
        runtime
            .block_on(MIGRATIONS.run(&pool))
            .map_err(SharedError::Migrate)?;
        Ok(SharedStore {
            runtime,
            pool,
            host: host.to_string(),
            lease,
            hls_root: hls_root.to_path_buf(),
        })
    }

    /// This host's name in the database (`holder`).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn load(&self, id: &str) -> io::Result<Option<Held>> {
        let row = self
            .runtime
            .block_on(
                sqlx::query(
                    "SELECT record, CASE WHEN lease_until > now() THEN holder END AS holder \
                     FROM liveup_jobs WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool),
            )
            .map_err(io::Error::other)?;
        row.map(|row| held(&row)).transpose()
    }

    pub fn load_held(&self) -> io::Result<Vec<Held>> {
        let rows = self
            .runtime
            .block_on(
                sqlx::query(
                    "SELECT record, CASE WHEN lease_until > now() THEN holder END AS holder \
                     FROM liveup_jobs ORDER BY created_at",
                )
                .fetch_all(&self.pool),
            )
            .map_err(io::Error::other)?;
        rows.iter().map(held).collect()
    }

    /// Takes the most urgent job no live host holds (queued, or running under a lease that ran
    /// out), skipping those another host is taking at this moment and `running` here. Returns
    /// it with whether it was running (its host died) when taken.
    pub fn claim_next(&self, running: &[String]) -> io::Result<Option<(JobRecord, bool)>> {
        let row = self
            .runtime
            .block_on(
                sqlx::query(
                    "WITH next AS (
                         SELECT id, state AS was FROM liveup_jobs
                         WHERE NOT stand_in AND state IN ('queued', 'running')
                           AND NOT (id = ANY($3))
                           AND (holder IS NULL OR lease_until < now())
                         ORDER BY priority, created_at
                         FOR UPDATE SKIP LOCKED LIMIT 1)
                     UPDATE liveup_jobs j
                     SET holder = $1, lease_until = now() + make_interval(secs => $2)
                     FROM next WHERE j.id = next.id
                     RETURNING j.record, next.was",
                )
                .bind(&self.host)
                .bind(self.lease.as_secs_f64())
                .bind(running)
                .fetch_optional(&self.pool),
            )
            .map_err(io::Error::other)?;
        row.map(|row| {
            let record = record_of(&row)?;
            let was: String = row.try_get("was").map_err(io::Error::other)?;
            Ok((record, was == JobState::Running.as_str()))
        })
        .transpose()
    }

    /// Lets go of the jobs an earlier life of this host held (it is starting again): they are
    /// claimed again at once, by whichever host has room, instead of after their leases.
    pub fn forget_earlier_life(&self) -> io::Result<u64> {
        let done = self
            .runtime
            .block_on(
                sqlx::query(
                    "UPDATE liveup_jobs SET holder = NULL, lease_until = NULL WHERE holder = $1",
                )
                .bind(&self.host)
                .execute(&self.pool),
            )
            .map_err(io::Error::other)?;
        Ok(done.rows_affected())
    }

    /// Extends this host's leases on `ids`; returns the ones it still holds.
    pub fn renew(&self, ids: &[String]) -> io::Result<Vec<String>> {
        let rows = self
            .runtime
            .block_on(
                sqlx::query(
                    "UPDATE liveup_jobs SET lease_until = now() + make_interval(secs => $2) \
                     WHERE holder = $1 AND id = ANY($3) RETURNING id",
                )
                .bind(&self.host)
                .bind(self.lease.as_secs_f64())
                .bind(ids)
                .fetch_all(&self.pool),
            )
            .map_err(io::Error::other)?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("id").map_err(io::Error::other))
            .collect()
    }

    /// Hands every job this host runs back to the queue (it is leaving): another host takes them
    /// at once instead of waiting for the leases to run out.
    pub fn release_all(&self) -> io::Result<u64> {
        let done = self
            .runtime
            .block_on(
                sqlx::query(
                    "UPDATE liveup_jobs SET holder = NULL, lease_until = NULL, state = 'queued', \
                     record = jsonb_set(record, '{state}', '\"queued\"') \
                     WHERE holder = $1 AND state = 'running'",
                )
                .bind(&self.host)
                .execute(&self.pool),
            )
            .map_err(io::Error::other)?;
        Ok(done.rows_affected())
    }

    /// Tells the other hosts, without waiting (so it may be called anywhere, async code
    /// included; best effort: a lost notice costs a viewer a retry, nothing more).
    pub fn tell(&self, notice: &Notice) {
        let channel = match notice {
            Notice::Job { .. } => JOBS_CHANNEL,
            Notice::Segment { .. } => SEGMENTS_CHANNEL,
            Notice::Want { .. } | Notice::Cancel { .. } => WANTS_CHANNEL,
        };
        let payload = serde_json::to_string(notice).unwrap_or_default();
        let pool = self.pool.clone();
        self.runtime.spawn(async move {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(&payload)
                .execute(&pool)
                .await;
            if let Err(error) = sent {
                tracing::warn!("cannot tell the other hosts ({payload}): {error}");
            }
        });
    }

    /// Delivers what other hosts say to `deliver`, from now until the receiver is dropped.
    /// A lost connection is re-established (notices sent meanwhile are lost; the supervisor's
    /// claims and the viewers' retries cover them).
    pub fn listen(&self, deliver: Sender<Notice>) {
        let pool = self.pool.clone();
        self.runtime.spawn(async move {
            loop {
                let listening = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener
                        .listen_all([JOBS_CHANNEL, SEGMENTS_CHANNEL, WANTS_CHANNEL])
                        .await?;
                    Ok::<_, sqlx::Error>(listener)
                };
                let mut listener = match listening.await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!("cannot listen to the other hosts: {error}; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                loop {
                    match listener.recv().await {
                        Ok(message) => {
                            let notice = if message.channel() == JOBS_CHANNEL {
                                Some(Notice::Job {
                                    job: message.payload().to_string(),
                                })
                            } else {
                                serde_json::from_str(message.payload()).ok()
                            };
                            if let Some(notice) = notice {
                                if deliver.send(notice).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(error) => {
                            tracing::warn!("lost the other hosts' notices: {error}");
                            break;
                        }
                    }
                }
            }
        });
    }
}

impl JobStore for SharedStore {
    fn create(&self, record: &JobRecord) -> io::Result<Option<JobRecord>> {
        // A job that failed, was cancelled or stopped, and that no live host holds, may be made
        // again; any other existing one is joined.
        let created = self
            .runtime
            .block_on(
                sqlx::query(
                    "INSERT INTO liveup_jobs (id, record, state, priority, stand_in, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) DO UPDATE
                     SET record = EXCLUDED.record, state = EXCLUDED.state,
                         priority = EXCLUDED.priority, holder = NULL, lease_until = NULL
                     WHERE liveup_jobs.state IN ('failed', 'cancelled', 'stopped')
                       AND (liveup_jobs.holder IS NULL OR liveup_jobs.lease_until < now())
                     RETURNING id",
                )
                .bind(&record.id)
                .bind(sqlx::types::Json(record))
                .bind(record.state.as_str())
                .bind(priority_rank(record.priority))
                .bind(record.stand_in_for.is_some())
                .bind(record.created_at as i64)
                .fetch_optional(&self.pool),
            )
            .map_err(io::Error::other)?;
        if created.is_some() {
            write_job_file(&self.hls_root, record)?;
            return Ok(None);
        }
        Ok(self.load(&record.id)?.map(|held| held.record))
    }

    /// Written when no live host holds the job, or this one does; a finished job is never
    /// moved back by a host that had not heard yet. The rungs stay as the database has them.
    fn save(&self, record: &JobRecord) -> io::Result<()> {
        let saved = self
            .runtime
            .block_on(
                sqlx::query(
                    "UPDATE liveup_jobs
                     SET record = jsonb_set(jsonb_set($2, '{variants}',
                                      coalesce(record->'variants', '[]')),
                                  '{variant_lock}', coalesce(record->'variant_lock', 'null')),
                         state = $3, priority = $4,
                         holder = CASE WHEN $3 = 'running' THEN holder END,
                         lease_until = CASE WHEN $3 = 'running' THEN lease_until END
                     WHERE id = $1
                       AND (holder IS NULL OR holder = $5 OR lease_until < now())
                       AND NOT (state = 'complete' AND $3 <> 'complete')
                     RETURNING record",
                )
                .bind(&record.id)
                .bind(sqlx::types::Json(record))
                .bind(record.state.as_str())
                .bind(priority_rank(record.priority))
                .bind(&self.host)
                .fetch_optional(&self.pool),
            )
            .map_err(io::Error::other)?;
        match saved {
            Some(row) => write_job_file(&self.hls_root, &record_of(&row)?),
            None => {
                tracing::debug!(job = %record.id, "not saved: another host holds the job");
                Ok(())
            }
        }
    }

    fn save_rungs(&self, record: &JobRecord) -> io::Result<()> {
        let rungs = serde_json::to_value(&record.variants).map_err(io::Error::other)?;
        let lock = serde_json::to_value(&record.variant_lock).map_err(io::Error::other)?;
        let saved = self
            .runtime
            .block_on(
                sqlx::query(
                    "UPDATE liveup_jobs
                     SET record = jsonb_set(jsonb_set(record, '{variants}', $2), '{variant_lock}', $3)
                     WHERE id = $1 RETURNING record",
                )
                .bind(&record.id)
                .bind(sqlx::types::Json(rungs))
                .bind(sqlx::types::Json(lock))
                .fetch_optional(&self.pool),
            )
            .map_err(io::Error::other)?;
        match saved {
            Some(row) => write_job_file(&self.hls_root, &record_of(&row)?),
            None => Ok(()),
        }
    }

    fn load_all(&self) -> Vec<JobRecord> {
        match self.load_held() {
            Ok(held) => held.into_iter().map(|h| h.record).collect(),
            Err(error) => {
                tracing::error!("cannot read the jobs from the database: {error}");
                Vec::new()
            }
        }
    }

    fn shared(&self) -> Option<&SharedStore> {
        Some(self)
    }
}

fn priority_rank(priority: Priority) -> i16 {
    match priority {
        Priority::Playback => 0,
        Priority::Library => 1,
    }
}

fn record_of(row: &sqlx::postgres::PgRow) -> io::Result<JobRecord> {
    let record: sqlx::types::Json<JobRecord> = row.try_get("record").map_err(io::Error::other)?;
    Ok(record.0)
}

fn held(row: &sqlx::postgres::PgRow) -> io::Result<Held> {
    Ok(Held {
        record: record_of(row)?,
        holder: row.try_get("holder").map_err(io::Error::other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_cross_as_json_and_back() {
        for notice in [
            Notice::Segment {
                job: "film-1".into(),
                index: 7,
            },
            Notice::Want {
                job: "film-1".into(),
                index: Some(40),
                viewer: "10.0.0.5 firefox".into(),
                from: "a:8765".into(),
            },
            Notice::Cancel {
                job: "film:2".into(),
                from: "b:8765".into(),
            },
        ] {
            let text = serde_json::to_string(&notice).unwrap();
            assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), notice);
        }
    }
}
