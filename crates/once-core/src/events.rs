//! A queue's own event log (EVENTS-MAX n > 0): its last n transitions, each with an id that only grows.
//! Ids keep growing while the log is off or trimmed, so a reader's `AFTER id` never matches a newer event.

use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Push,
    Reserve,
    Ack,
    Nack,
    Retry,
    Expire,
    Dead,
    Drop,
    Cancel,
    Pause,
    Resume,
    Progress,
    /// Pushed to wait for its dependencies.
    Wait,
    /// Its dependencies finished: ready (or delayed) now.
    Release,
}

const KINDS: [Kind; 14] = [
    Kind::Push,
    Kind::Reserve,
    Kind::Ack,
    Kind::Nack,
    Kind::Retry,
    Kind::Expire,
    Kind::Dead,
    Kind::Drop,
    Kind::Cancel,
    Kind::Pause,
    Kind::Resume,
    Kind::Progress,
    Kind::Wait,
    Kind::Release,
];

impl Kind {
    /// The name ONCE.EVENTS replies (the keyspace notification is `once.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Push => "push",
            Kind::Reserve => "reserve",
            Kind::Ack => "ack",
            Kind::Nack => "nack",
            Kind::Retry => "retry",
            Kind::Expire => "expire",
            Kind::Dead => "dead",
            Kind::Drop => "drop",
            Kind::Cancel => "cancel",
            Kind::Pause => "pause",
            Kind::Resume => "resume",
            Kind::Progress => "progress",
            Kind::Wait => "wait",
            Kind::Release => "release",
        }
    }

    pub fn from_name(b: &[u8]) -> Option<Kind> {
        KINDS.iter().copied().find(|k| k.name().as_bytes() == b)
    }

    pub fn code(self) -> u64 {
        KINDS.iter().position(|&k| k == self).unwrap_or(0) as u64
    }

    pub fn from_code(c: u64) -> Option<Kind> {
        KINDS.get(usize::try_from(c).ok()?).copied()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: u64,
    pub kind: Kind,
    /// The job's public id; None for queue events (pause, resume).
    pub job: Option<Box<[u8]>>,
    pub attempt: u32,
    pub ms: u64,
    pub error: Option<Box<[u8]>>,
}

impl Event {
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Event>()
            + self.job.as_ref().map_or(0, |j| j.len())
            + self.error.as_ref().map_or(0, |e| e.len())
    }
}

/// Ids stay within i64, as every encoding carries them.
pub const ID_MAX: u64 = i64::MAX as u64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    events: VecDeque<Event>,
    /// The id the next event gets minus one: the last id handed out (0: none yet).
    last_id: u64,
}

impl EventLog {
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Appends an event, keeping at most `max` (0: the log is off and nothing changes).
    pub fn record(&mut self, max: u64, kind: Kind, job: Option<&[u8]>, attempt: u32, ms: u64, error: Option<&[u8]>) {
        // At the top of the id range the log stops, rather than hand out an id twice.
        if max == 0 || self.last_id >= ID_MAX {
            return;
        }
        self.last_id += 1;
        self.events.push_back(Event {
            id: self.last_id,
            kind,
            job: job.map(Into::into),
            attempt,
            ms,
            error: error.map(Into::into),
        });
        self.trim(max);
    }

    /// Drops the oldest events beyond `max` (0: all of them).
    pub fn trim(&mut self, max: u64) {
        let keep = usize::try_from(max).unwrap_or(usize::MAX);
        while self.events.len() > keep {
            self.events.pop_front();
        }
    }

    /// Events with an id above `after`, oldest first, at most `count`. O(log n + count).
    pub fn after(&self, after: u64, count: usize) -> impl Iterator<Item = &Event> {
        let start = self.events.partition_point(|e| e.id <= after);
        self.events.range(start..).take(count)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// Adds an event as an encoding carries it (RDB, AOF rewrite): ids must grow.
    pub fn restore(&mut self, e: Event) -> Result<(), String> {
        if e.id <= self.last_id {
            return Err(format!("event id {} does not follow {}", e.id, self.last_id));
        }
        self.last_id = e.id;
        self.events.push_back(e);
        Ok(())
    }

    /// Raises the last id handed out (never lowers it).
    pub fn set_last_id(&mut self, id: u64) {
        self.last_id = self.last_id.max(id);
    }

    pub fn bytes(&self) -> usize {
        self.events.iter().map(Event::bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_only_grow_and_the_log_keeps_the_last_n() {
        let mut log = EventLog::default();
        log.record(0, Kind::Push, Some(b"a"), 0, 1, None);
        assert!(log.is_empty());
        assert_eq!(log.last_id(), 0);
        for i in 0..6 {
            log.record(3, Kind::Ack, Some(b"b"), 1, 10 + i, None);
        }
        let ids: Vec<u64> = log.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![4, 5, 6]);
        let after: Vec<u64> = log.after(4, 10).map(|e| e.id).collect();
        assert_eq!(after, vec![5, 6]);
        assert_eq!(log.after(0, 1).map(|e| e.id).collect::<Vec<_>>(), vec![4]);
        assert_eq!(log.after(6, 10).count(), 0);
        log.trim(1);
        assert_eq!(log.iter().map(|e| e.id).collect::<Vec<_>>(), vec![6]);
        log.trim(0);
        log.record(2, Kind::Cancel, Some(b"c"), 0, 20, None);
        assert_eq!(log.iter().map(|e| e.id).collect::<Vec<_>>(), vec![7], "ids go on after a trim");
        assert!(log.restore(Event { id: 7, kind: Kind::Push, job: None, attempt: 0, ms: 0, error: None }).is_err());
        for k in KINDS {
            assert_eq!(Kind::from_code(k.code()), Some(k));
            assert_eq!(Kind::from_name(k.name().as_bytes()), Some(k));
        }
    }
}
