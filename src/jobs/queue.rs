//! The jobs waiting for a run and the slots they run in: playback before library, first come
//! first served within each, each job at most once; at most `per_device` runs on each device
//! at a time, a new run going to the least busy device. Stand-ins (see
//! [`super::JobRecord::stand_in_for`]) wait for no slot: they must play while their film's own job
//! holds one.

use super::Priority;

/// The "device" of a run started beside the slots.
pub const BESIDE: usize = usize::MAX;

#[derive(Debug, Default)]
pub struct Queue {
    /// Sorted by (priority, arrival).
    waiting: Vec<(Priority, u64, String)>,
    arrivals: u64,
    slots: Slots,
    beside: Vec<String>,
    running_beside: usize,
}

/// The devices runs go to (`cuda:0`, `cpu`, …) and how many run on each now.
#[derive(Debug)]
pub struct Slots {
    devices: Vec<String>,
    per_device: usize,
    busy: Vec<usize>,
}

impl Default for Slots {
    fn default() -> Slots {
        Slots::new(vec!["cpu".to_string()], 1)
    }
}

impl Slots {
    pub fn new(devices: Vec<String>, per_device: usize) -> Slots {
        let busy = vec![0; devices.len()];
        Slots {
            devices,
            per_device: per_device.max(1),
            busy,
        }
    }

    /// The least busy device with room (the first of equals), now one run busier.
    fn take(&mut self) -> Option<usize> {
        let (device, _) = self
            .busy
            .iter()
            .enumerate()
            .filter(|(_, busy)| **busy < self.per_device)
            .min_by_key(|(index, busy)| (**busy, *index))?;
        self.busy[device] += 1;
        Some(device)
    }

    fn release(&mut self, device: usize) {
        if let Some(busy) = self.busy.get_mut(device) {
            *busy = busy.saturating_sub(1);
        }
    }

    pub fn label(&self, device: usize) -> &str {
        &self.devices[device]
    }

    /// Each device with the runs on it now.
    pub fn load(&self) -> Vec<(String, usize)> {
        self.devices
            .iter()
            .cloned()
            .zip(self.busy.iter().copied())
            .collect()
    }
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

    /// Queues job `id` to start at once, beside the slots.
    pub fn push_beside(&mut self, id: &str) {
        if !self.contains(id) {
            self.beside.push(id.to_string());
        }
    }

    pub fn remove(&mut self, id: &str) {
        self.waiting.retain(|(_, _, waiting)| waiting != id);
        self.beside.retain(|waiting| waiting != id);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.waiting.iter().any(|(_, _, waiting)| waiting == id)
            || self.beside.iter().any(|waiting| waiting == id)
    }

    /// Runs go to these devices from now on (set once, before any run).
    pub fn set_slots(&mut self, slots: Slots) {
        self.slots = slots;
    }

    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// The next job to run and the device it runs on, taking a slot there, when one is free.
    pub fn start_next(&mut self) -> Option<(String, usize)> {
        if !self.beside.is_empty() {
            self.running_beside += 1;
            return Some((self.beside.remove(0), BESIDE));
        }
        if self.waiting.is_empty() {
            return None;
        }
        let device = self.slots.take()?;
        Some((self.waiting.remove(0).2, device))
    }

    /// A free slot, taken (with several hosts, for a job the database's queue gives).
    pub fn take_slot(&mut self) -> Option<usize> {
        self.slots.take()
    }

    /// A run on `device` ended: its slot is free.
    pub fn finished(&mut self, device: usize) {
        if device == BESIDE {
            self.running_beside = self.running_beside.saturating_sub(1);
        } else {
            self.slots.release(device);
        }
    }

    pub fn running(&self) -> usize {
        self.slots.busy.iter().sum::<usize>() + self.running_beside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut Queue) -> Vec<String> {
        queue.set_slots(Slots::new(vec!["cpu".into()], usize::MAX));
        std::iter::from_fn(|| queue.start_next().map(|(id, _)| id)).collect()
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
        queue.set_slots(Slots::new(vec!["cpu".into()], 2));
        for id in ["a", "b", "c"] {
            queue.push(id, Priority::Library);
        }
        assert_eq!(queue.start_next(), Some(("a".to_string(), 0)));
        assert_eq!(queue.start_next(), Some(("b".to_string(), 0)));
        assert_eq!(queue.start_next(), None);
        assert_eq!(queue.running(), 2);
        queue.finished(0);
        assert_eq!(queue.start_next(), Some(("c".to_string(), 0)));
        queue.finished(0);
        queue.finished(0);
        assert_eq!(queue.start_next(), None, "nothing waits");
        assert_eq!(queue.running(), 0);
        queue.push("d", Priority::Library);
        queue.remove("d");
        assert!(!queue.contains("d"));
        assert_eq!(queue.start_next(), None);
    }

    #[test]
    fn a_stand_in_starts_beside_full_slots_and_is_counted_as_running() {
        let mut queue = Queue::default();
        queue.push("film", Priority::Playback);
        assert_eq!(queue.start_next(), Some(("film".to_string(), 0)));
        queue.push("queued", Priority::Library);
        queue.push_beside("stand-in");
        queue.push_beside("stand-in");
        assert!(queue.contains("stand-in"));
        assert_eq!(queue.start_next(), Some(("stand-in".to_string(), BESIDE)));
        assert_eq!(queue.start_next(), None, "the one slot is still taken");
        assert_eq!(queue.running(), 2);
        queue.finished(BESIDE);
        assert_eq!(queue.running(), 1);
        assert_eq!(queue.start_next(), None, "a stand-in ending frees no slot");
        queue.finished(0);
        assert_eq!(queue.start_next(), Some(("queued".to_string(), 0)));
        queue.push_beside("gone");
        queue.remove("gone");
        assert!(!queue.contains("gone"));
    }

    #[test]
    fn runs_spread_over_the_devices_least_busy_first() {
        let mut queue = Queue::default();
        let gpus = vec!["cuda:0".to_string(), "cuda:1".to_string()];
        queue.set_slots(Slots::new(gpus, 2));
        for id in ["a", "b", "c", "d", "e"] {
            queue.push(id, Priority::Library);
        }
        let started: Vec<(String, usize)> = std::iter::from_fn(|| queue.start_next()).collect();
        let on: Vec<(&str, &str)> = started
            .iter()
            .map(|(id, device)| (id.as_str(), queue.slots().label(*device)))
            .collect();
        assert_eq!(
            on,
            [
                ("a", "cuda:0"),
                ("b", "cuda:1"),
                ("c", "cuda:0"),
                ("d", "cuda:1")
            ],
            "two per device, alternating"
        );
        assert_eq!(
            queue.slots().load(),
            [("cuda:0".into(), 2), ("cuda:1".into(), 2)]
        );
        // A slot frees on cuda:1: the next run goes there.
        queue.finished(1);
        assert_eq!(queue.start_next(), Some(("e".to_string(), 1)));
        queue.finished(0);
        queue.finished(0);
        queue.push("f", Priority::Playback);
        assert_eq!(queue.start_next(), Some(("f".to_string(), 0)));
    }
}
