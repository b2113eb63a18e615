//! The jobs waiting for a run and the slots they run in: playback before library, first come
//! first served within each, each job at most once, at most `slots` running at a time.

use super::Priority;

#[derive(Debug, Default)]
pub struct Queue {
    /// Sorted by (priority, arrival).
    waiting: Vec<(Priority, u64, String)>,
    arrivals: u64,
    running: usize,
}

impl Queue {
    /// Queues job `id`; a job already waiting keeps its place (raised to `priority` if that is
    /// more urgent).
    pub fn push(&mut self, id: &str, priority: Priority) {
        if self.contains(id) {
            self.raise(id, priority);
            return;
        }
        self.arrivals += 1;
        self.waiting.push((priority, self.arrivals, id.to_string()));
        self.waiting.sort();
    }

    /// Moves a waiting job up to `priority`; never down.
    pub fn raise(&mut self, id: &str, priority: Priority) {
        for waiting in &mut self.waiting {
            if waiting.2 == id && priority < waiting.0 {
                waiting.0 = priority;
            }
        }
        self.waiting.sort();
    }

    pub fn remove(&mut self, id: &str) {
        self.waiting.retain(|(_, _, waiting)| waiting != id);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.waiting.iter().any(|(_, _, waiting)| waiting == id)
    }

    /// The next job to run, taking a slot, when one of `slots` is free.
    pub fn start_next(&mut self, slots: usize) -> Option<String> {
        if self.running >= slots.max(1) || self.waiting.is_empty() {
            return None;
        }
        self.running += 1;
        Some(self.waiting.remove(0).2)
    }

    /// A run ended: its slot is free.
    pub fn finished(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    pub fn running(&self) -> usize {
        self.running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut Queue) -> Vec<String> {
        std::iter::from_fn(|| queue.start_next(usize::MAX)).collect()
    }

    #[test]
    fn playback_goes_first_then_arrival_order() {
        let mut queue = Queue::default();
        queue.push("a", Priority::Library);
        queue.push("b", Priority::Playback);
        queue.push("c", Priority::Library);
        queue.push("d", Priority::Playback);
        assert_eq!(drain(&mut queue), ["b", "d", "a", "c"]);
    }

    #[test]
    fn a_job_waits_once_and_is_only_ever_raised() {
        let mut queue = Queue::default();
        queue.push("a", Priority::Library);
        queue.push("b", Priority::Library);
        queue.push("b", Priority::Library);
        queue.push("b", Priority::Playback);
        queue.raise("b", Priority::Library);
        queue.push("c", Priority::Playback);
        assert_eq!(drain(&mut queue), ["b", "c", "a"]);
    }

    #[test]
    fn no_more_run_than_there_are_slots() {
        let mut queue = Queue::default();
        for id in ["a", "b", "c"] {
            queue.push(id, Priority::Library);
        }
        assert_eq!(queue.start_next(2).as_deref(), Some("a"));
        assert_eq!(queue.start_next(2).as_deref(), Some("b"));
        assert_eq!(queue.start_next(2), None);
        assert_eq!(queue.running(), 2);
        queue.finished();
        assert_eq!(queue.start_next(2).as_deref(), Some("c"));
        queue.finished();
        queue.finished();
        assert_eq!(queue.start_next(0), None, "nothing waits");
        queue.push("d", Priority::Library);
        queue.remove("d");
        assert!(!queue.contains("d"));
        assert_eq!(queue.start_next(1), None);
    }
}
