//! Viewer sessions: who is watching which job and how far they have asked. One session per
//! (job, viewer); found in O(1) by its id and by (job, viewer); refreshed by every playlist or
//! segment request, forgotten after a period without any.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub id: String,
    pub job_id: String,
    /// The `session` query parameter, else the `X-Playback-Session-Id` header, else the client
    /// address.
    pub viewer: String,
    /// The furthest segment this viewer asked for.
    pub furthest_segment: Option<u32>,
    pub requests: u64,
    #[serde(skip)]
    pub last_seen: Instant,
    pub idle_seconds: f64,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
    by_viewer: HashMap<(String, String), String>,
    created: u64,
}

impl Sessions {
    /// Records a request of `viewer` on `job_id` (for `segment`, if any) and returns its session.
    pub fn touch(&mut self, job_id: &str, viewer: &str, segment: Option<u32>) -> &Session {
        let key = (job_id.to_string(), viewer.to_string());
        let id = match self.by_viewer.get(&key) {
            Some(id) => id.clone(),
            None => {
                self.created += 1;
                let id = format!("s{:x}-{}", self.created, short_hash(job_id, viewer));
                self.by_viewer.insert(key, id.clone());
                self.by_id.insert(
                    id.clone(),
                    Session {
                        id: id.clone(),
                        job_id: job_id.to_string(),
                        viewer: viewer.to_string(),
                        furthest_segment: None,
                        requests: 0,
                        last_seen: Instant::now(),
                        idle_seconds: 0.0,
                    },
                );
                id
            }
        };
        let session = self.by_id.get_mut(&id).expect("indexed both ways");
        session.last_seen = Instant::now();
        session.requests += 1;
        if let Some(segment) = segment {
            session.furthest_segment =
                Some(session.furthest_segment.map_or(segment, |f| f.max(segment)));
        }
        session
    }

    pub fn get(&self, id: &str) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub fn find(&self, job_id: &str, viewer: &str) -> Option<&Session> {
        let id = self
            .by_viewer
            .get(&(job_id.to_string(), viewer.to_string()))?;
        self.by_id.get(id)
    }

    /// When the next session runs out, if any.
    pub fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.by_id.values().map(|s| s.last_seen + timeout).min()
    }

    /// Removes sessions idle for longer than `timeout`; returns them.
    pub fn expire(&mut self, timeout: Duration) -> Vec<Session> {
        let expired: Vec<String> = self
            .by_id
            .values()
            .filter(|s| s.last_seen.elapsed() > timeout)
            .map(|s| s.id.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|id| {
                let session = self.by_id.remove(&id)?;
                self.by_viewer
                    .remove(&(session.job_id.clone(), session.viewer.clone()));
                Some(session)
            })
            .collect()
    }

    /// The furthest segment any viewer of `job_id` asked for, and whether it has viewers at all.
    pub fn furthest_for(&self, job_id: &str) -> (bool, Option<u32>) {
        let mut watched = false;
        let mut furthest = None;
        for session in self.by_id.values().filter(|s| s.job_id == job_id) {
            watched = true;
            furthest = furthest.max(session.furthest_segment);
        }
        (watched, furthest)
    }

    pub fn list(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self
            .by_id
            .values()
            .map(|s| Session {
                idle_seconds: s.last_seen.elapsed().as_secs_f64(),
                ..s.clone()
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn short_hash(job_id: &str, viewer: &str) -> String {
    let id = super::id::job_id(std::path::Path::new(job_id), 0, 0, viewer);
    id[id.len() - 8..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_per_viewer_and_job_found_both_ways() {
        let mut sessions = Sessions::default();
        let a = sessions.touch("job1", "10.0.0.2", Some(3)).id.clone();
        let again = sessions.touch("job1", "10.0.0.2", Some(1)).clone();
        assert_eq!(again.id, a);
        assert_eq!(again.furthest_segment, Some(3), "furthest never moves back");
        assert_eq!(again.requests, 2);
        let b = sessions.touch("job2", "10.0.0.2", None).id.clone();
        assert_ne!(a, b);
        assert_eq!(sessions.find("job1", "10.0.0.2").unwrap().id, a);
        assert_eq!(sessions.get(&b).unwrap().job_id, "job2");
        sessions.touch("job1", "phone", Some(9));
        assert_eq!(sessions.furthest_for("job1"), (true, Some(9)));
        assert_eq!(sessions.furthest_for("job3"), (false, None));
    }

    #[test]
    fn idle_sessions_expire_and_leave_both_indexes() {
        let mut sessions = Sessions::default();
        let id = sessions.touch("job1", "tv", None).id.clone();
        std::thread::sleep(Duration::from_millis(30));
        sessions.touch("job2", "tv", None);
        let expired = sessions.expire(Duration::from_millis(20));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, id);
        assert!(sessions.get(&id).is_none() && sessions.find("job1", "tv").is_none());
        assert_eq!(sessions.len(), 1);
    }
}
