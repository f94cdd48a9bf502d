//! Flow control: the queue's and its groups' concurrency and rate limits, and the round-robin that serves
//! groups fairly. Plain state, decided by reservations and releases at the master's times, so a replica
//! replaying the same reservations (with the master's `now`) holds the same state.
//!
//! A group is *eligible* when it has a ready job and room under its concurrency. Eligible groups wait either
//! in the ring (served in turn) or, when their rate window is full, among the *waiting* by the time their
//! rate allows the next reservation. RESERVE takes a waiting group whose time has come first, else the ring's
//! front; after a reservation the group goes to the ring's back (or to waiting). Entries of groups that
//! stopped being eligible stay behind and are skipped: a group that becomes eligible again always goes to
//! the back, so a skipped entry never decides anything.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// `n` reservations in any window of `per_ms`; `n == 0` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    pub n: u32,
    pub per_ms: u64,
}

impl Rate {
    pub fn is_limit(self) -> bool {
        self.n > 0
    }
}

/// The last `n` reservation times (oldest first): the sliding window of a rate limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window(pub VecDeque<u64>);

impl Window {
    /// When the next reservation may go under `rate` (None: now). It is when the oldest of the last n is
    /// `per_ms` old, so no window of `per_ms` ever holds more than n.
    pub fn allow_at(&self, rate: Rate) -> Option<u64> {
        let n = rate.n as usize;
        let len = self.0.len();
        (rate.is_limit() && len >= n).then(|| self.0[len - n].saturating_add(rate.per_ms))
    }

    pub fn allows(&self, rate: Rate, now: u64) -> bool {
        self.allow_at(rate).is_none_or(|t| t <= now)
    }

    pub fn record(&mut self, rate: Rate, now: u64) {
        if !rate.is_limit() {
            return;
        }
        self.0.push_back(now);
        while self.0.len() > rate.n as usize {
            self.0.pop_front();
        }
    }

    pub fn newest(&self) -> Option<u64> {
        self.0.back().copied()
    }
}

/// A group's own limits, over the queue's GROUP-CONCURRENCY / GROUP-RATE (None: the queue's apply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub concurrency: Option<u32>,
    pub rate: Option<Rate>,
}

/// What the queue sets for every group and for itself (from its settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLimits {
    pub concurrency: u32,
    pub rate: Rate,
    pub group_concurrency: u32,
    pub group_rate: Rate,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Slot {
    #[default]
    None,
    Ring(u64),
    Waiting(u64),
}

#[derive(Clone, Debug, Default)]
pub struct Group {
    pub name: Box<[u8]>,
    pub own: Limits,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub dead: u64,
    /// Jobs of the group waiting for their dependencies.
    pub waiting: u64,
    pub window: Window,
    slot: Slot,
    /// Its key in the idle index: drained, kept only until its rate window ends.
    idle_until: Option<u64>,
}

impl Group {
    /// A group of that name with nothing in it (what a freed group reads as).
    pub fn named(name: &[u8]) -> Group {
        Group { name: name.into(), ..Group::default() }
    }

    fn concurrency(&self, l: &QueueLimits) -> u32 {
        self.own.concurrency.unwrap_or(l.group_concurrency)
    }

    pub fn rate(&self, l: &QueueLimits) -> Rate {
        self.own.rate.unwrap_or(l.group_rate)
    }

    fn eligible(&self, l: &QueueLimits) -> bool {
        let c = self.concurrency(l);
        self.ready > 0 && (c == 0 || self.reserved < u64::from(c))
    }

    /// Whether anything about the group is worth keeping: jobs, its own limits, or a window still running.
    pub fn holds_state(&self) -> bool {
        self.held() > 0 || self.own != Limits::default() || !self.window.0.is_empty()
    }

    /// Jobs of the group that readers see, in any state (purged ones not yet freed do not count): a group
    /// is freed only when none is left, the same moment on every node.
    pub fn held(&self) -> u64 {
        self.ready + self.reserved + self.delayed + self.dead + self.waiting
    }
}

/// The default group (jobs pushed without GROUP) is group 0 and has the empty name.
pub const DEFAULT_GROUP: u32 = 0;

/// Idle groups freed per reservation or release (the rest wait for the next ones).
const SWEEP: usize = 8;

#[derive(Clone, Debug)]
pub struct Flow {
    /// The default group, and the named ones by number: a map, not a vector, so memory goes back as
    /// groups drain (a vector of 100,000 freed slots would keep them).
    default: Group,
    named: BTreeMap<u32, Group>,
    next_gid: u32,
    names: BTreeMap<Box<[u8]>, u32>,
    ring: BTreeMap<u64, u32>,
    next_turn: u64,
    /// Both by (time, name): ties must break the same way on every node, and group numbers are each
    /// process's own (a replica loaded from an RDB numbers its groups afresh).
    waiting: BTreeSet<(u64, Box<[u8]>)>,
    idle: BTreeSet<(u64, Box<[u8]>)>,
    /// The queue's own rate window.
    pub window: Window,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            default: Group::default(),
            named: BTreeMap::new(),
            next_gid: 1,
            names: BTreeMap::new(),
            ring: BTreeMap::new(),
            next_turn: 0,
            waiting: BTreeSet::new(),
            idle: BTreeSet::new(),
            window: Window::default(),
        }
    }
}

impl Flow {
    pub fn group(&self, gid: u32) -> Option<&Group> {
        if gid == DEFAULT_GROUP {
            return Some(&self.default);
        }
        self.named.get(&gid)
    }

    fn group_mut(&mut self, gid: u32) -> Option<&mut Group> {
        if gid == DEFAULT_GROUP {
            return Some(&mut self.default);
        }
        self.named.get_mut(&gid)
    }

    pub fn gid(&self, name: &[u8]) -> Option<u32> {
        if name.is_empty() {
            return Some(DEFAULT_GROUP);
        }
        self.names.get(name).copied()
    }

    /// The group of that name, made (empty) if there is none.
    pub fn gid_or_new(&mut self, name: &[u8]) -> u32 {
        if let Some(g) = self.gid(name) {
            return g;
        }
        let mut gid = self.next_gid;
        while gid == DEFAULT_GROUP || self.named.contains_key(&gid) {
            gid = gid.wrapping_add(1);
        }
        self.next_gid = gid.wrapping_add(1);
        self.named.insert(gid, Group::named(name));
        self.names.insert(name.into(), gid);
        gid
    }

    pub fn name(&self, gid: u32) -> &[u8] {
        self.group(gid).map_or(&[][..], |g| &g.name)
    }

    /// Named groups that exist (the default group not counted).
    pub fn named(&self) -> usize {
        self.names.len()
    }

    /// Named groups by name from `from` on (inclusive).
    pub fn named_from<'a>(&'a self, from: &[u8]) -> impl Iterator<Item = (u32, &'a Group)> + 'a {
        use std::ops::Bound::{Included, Unbounded};
        let start: Box<[u8]> = from.into();
        self.names
            .range::<Box<[u8]>, _>((Included(start), Unbounded))
            .filter_map(|(_, &g)| self.group(g).map(|gr| (g, gr)))
    }

    /// The default group, then the named ones by name: an order every node agrees on.
    pub fn gids_by_name(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(DEFAULT_GROUP).chain(self.names.values().copied())
    }

    pub fn all(&self) -> impl Iterator<Item = (u32, &Group)> {
        std::iter::once((DEFAULT_GROUP, &self.default)).chain(self.named.iter().map(|(&g, gr)| (g, gr)))
    }

    fn unslot(&mut self, gid: u32) {
        let Some(g) = self.group_mut(gid) else { return };
        let slot = std::mem::take(&mut g.slot);
        match slot {
            Slot::Ring(t) => {
                self.ring.remove(&t);
            }
            Slot::Waiting(t) => {
                let key = (t, g.name.clone());
                self.waiting.remove(&key);
            }
            Slot::None => {}
        }
    }

    /// Puts an eligible group at the back of the ring, or among the waiting when its rate window is full.
    fn place(&mut self, gid: u32, l: &QueueLimits) {
        self.unslot(gid);
        let Some(g) = self.group(gid) else { return };
        if !g.eligible(l) {
            return;
        }
        let slot = match g.window.allow_at(g.rate(l)) {
            Some(t) => {
                self.waiting.insert((t, g.name.clone()));
                Slot::Waiting(t)
            }
            None => {
                let turn = self.next_turn;
                self.next_turn += 1;
                self.ring.insert(turn, gid);
                Slot::Ring(turn)
            }
        };
        if let Some(g) = self.group_mut(gid) {
            g.slot = slot;
        }
    }

    fn eligible(&self, gid: u32, l: &QueueLimits) -> bool {
        self.group(gid).is_some_and(|g| g.eligible(l))
    }

    fn unidle(&mut self, gid: u32) {
        let Some(g) = self.group_mut(gid) else { return };
        if let Some(t) = g.idle_until.take() {
            let key = (t, g.name.clone());
            self.idle.remove(&key);
        }
    }

    /// A job of `gid` became delayed (`dead` false) or dead, or (`by` -1) stopped being so.
    pub fn count_waiting(&mut self, gid: u32, dead: bool, by: i64) {
        if by > 0 {
            self.unidle(gid);
        }
        if let Some(g) = self.group_mut(gid) {
            let n = if dead { &mut g.dead } else { &mut g.delayed };
            *n = n.saturating_add_signed(by);
        }
    }

    /// A job of `gid` started (`by` 1) or stopped (-1) waiting for its dependencies.
    pub fn count_dependent(&mut self, gid: u32, by: i64) {
        if by > 0 {
            self.unidle(gid);
        }
        if let Some(g) = self.group_mut(gid) {
            g.waiting = g.waiting.saturating_add_signed(by);
        }
    }

    /// Frees the group if it holds nothing now (a job of it left the queue, or never went in).
    pub fn forget_if_empty(&mut self, gid: u32, l: &QueueLimits) {
        self.maybe_free(gid, l);
    }

    /// A job of `gid` became ready.
    pub fn add_ready(&mut self, gid: u32, l: &QueueLimits) {
        self.unidle(gid);
        let was = self.eligible(gid, l);
        let Some(g) = self.group_mut(gid) else { return };
        g.ready += 1;
        if !was && self.eligible(gid, l) {
            self.place(gid, l);
        }
    }

    /// A ready job of `gid` left ready without a reservation (cancel, a retry's failure path).
    pub fn remove_ready(&mut self, gid: u32) {
        if let Some(g) = self.group_mut(gid) {
            g.ready = g.ready.saturating_sub(1);
        }
    }

    /// A job of `gid` is reserved at `now` (it already left its ready line): counts, windows, its next turn.
    pub fn took(&mut self, gid: u32, now: u64, l: &QueueLimits) {
        self.unslot(gid);
        self.window.record(l.rate, now);
        if let Some(g) = self.group_mut(gid) {
            g.ready = g.ready.saturating_sub(1);
            g.reserved += 1;
            let rate = g.rate(l);
            g.window.record(rate, now);
        }
        self.place(gid, l);
        self.sweep(now, l);
    }

    /// A reserved job of `gid` was counted as reserved (load, replica stream) without a fresh reservation.
    pub fn add_reserved(&mut self, gid: u32, l: &QueueLimits) {
        self.unidle(gid);
        if let Some(g) = self.group_mut(gid) {
            g.reserved += 1;
        }
        if !self.eligible(gid, l) {
            self.unslot(gid);
        }
    }

    /// A reservation of `gid` ended (ACK, NACK, lease expiry) at `now`.
    pub fn released(&mut self, gid: u32, now: u64, l: &QueueLimits) {
        let was = self.eligible(gid, l);
        if let Some(g) = self.group_mut(gid) {
            g.reserved = g.reserved.saturating_sub(1);
        }
        if !was && self.eligible(gid, l) {
            self.place(gid, l);
        }
        self.sweep(now, l);
    }

    /// Frees a drained group with nothing of its own; one whose rate window still runs waits in the idle
    /// index until it ends.
    fn maybe_free(&mut self, gid: u32, l: &QueueLimits) {
        if gid == DEFAULT_GROUP {
            return;
        }
        let Some(g) = self.group(gid) else { return };
        if g.held() > 0 || g.own != Limits::default() || g.idle_until.is_some() {
            return;
        }
        let rate = g.rate(l);
        match g.window.newest() {
            Some(t) if rate.is_limit() => {
                let until = t.saturating_add(rate.per_ms);
                self.idle.insert((until, g.name.clone()));
                if let Some(g) = self.group_mut(gid) {
                    g.idle_until = Some(until);
                }
            }
            _ => self.free_group(gid),
        }
    }

    fn free_group(&mut self, gid: u32) {
        self.unslot(gid);
        self.unidle(gid);
        if gid == DEFAULT_GROUP {
            return;
        }
        if let Some(g) = self.named.remove(&gid) {
            self.names.remove(&g.name);
        }
    }

    /// Frees idle groups whose window ended by `now` (a few per call).
    fn sweep(&mut self, now: u64, l: &QueueLimits) {
        self.sweep_idle(now, SWEEP, l);
    }

    /// When the first idle group's window ends (the timer frees them then).
    pub fn idle_deadline(&self) -> Option<u64> {
        self.idle.first().map(|(t, _)| *t)
    }

    /// Frees up to `max` idle groups whose window ended by `now`; returns how many it looked at.
    pub fn sweep_idle(&mut self, now: u64, max: usize, l: &QueueLimits) -> usize {
        for done in 0..max {
            let Some((t, name)) = self.idle.pop_first() else { return done };
            if t > now {
                self.idle.insert((t, name));
                return done;
            }
            let Some(gid) = self.gid(&name) else { continue };
            if let Some(g) = self.group_mut(gid) {
                g.idle_until = None;
                g.window.0.clear();
            }
            self.maybe_free(gid, l);
        }
        max
    }

    /// Whether the queue-wide limits let one more reservation go at `now`, with `reserved` jobs out.
    pub fn queue_allows(&self, reserved: usize, now: u64, l: &QueueLimits) -> bool {
        (l.concurrency == 0 || reserved < l.concurrency as usize) && self.window.allows(l.rate, now)
    }

    /// The group RESERVE serves next at `now`: a waiting group whose time has come, else the ring's front.
    /// Skipped entries (of groups no longer eligible) are dropped on the way.
    pub fn next_group(&mut self, now: u64, l: &QueueLimits) -> Option<u32> {
        loop {
            if let Some((t, name)) = self.waiting.first().filter(|(t, _)| *t <= now) {
                let (t, gid) = (*t, self.gid(name));
                if let Some(gid) =
                    gid.filter(|&g| self.group(g).is_some_and(|g| g.slot == Slot::Waiting(t) && g.eligible(l)))
                {
                    return Some(gid);
                }
                self.waiting.pop_first();
                if let Some(gid) = gid {
                    self.clear_slot_if(gid, Slot::Waiting(t));
                }
                continue;
            }
            let (&turn, &gid) = self.ring.first_key_value()?;
            if self.group(gid).is_some_and(|g| g.slot == Slot::Ring(turn) && g.eligible(l)) {
                return Some(gid);
            }
            self.ring.remove(&turn);
            self.clear_slot_if(gid, Slot::Ring(turn));
        }
    }

    fn clear_slot_if(&mut self, gid: u32, slot: Slot) {
        if let Some(g) = self.group_mut(gid).filter(|g| g.slot == slot) {
            g.slot = Slot::None;
        }
    }

    /// When a RESERVE blocked on the limits could next be served (None: only a release or a new job can
    /// help, or it can be served now).
    pub fn wake_at(&self, reserved: usize, now: u64, l: &QueueLimits) -> Option<u64> {
        if l.concurrency > 0 && reserved >= l.concurrency as usize {
            return None;
        }
        let queue = self.window.allow_at(l.rate).unwrap_or(0);
        let group = if self.ring.is_empty() { self.waiting.first().map(|(t, _)| *t)? } else { now };
        Some(queue.max(group)).filter(|&t| t > now)
    }

    /// Every group's place, again, after the queue's limits changed (O(groups)): the ring keeps its order,
    /// then the waiting and every other group that is now eligible follow, by name (the same on every node).
    pub fn replace_all(&mut self, l: &QueueLimits) {
        let mut order: Vec<u32> = self.ring.values().copied().collect();
        order.extend(self.waiting.iter().filter_map(|(_, n)| self.gid(n)));
        order.extend(self.gids_by_name());
        let mut seen = std::collections::HashSet::new();
        for gid in order {
            if seen.insert(gid) && self.group(gid).is_some() {
                self.replace(gid, l);
            }
        }
    }

    fn replace(&mut self, gid: u32, l: &QueueLimits) {
        if self.eligible(gid, l) {
            self.place(gid, l);
        } else {
            self.unslot(gid);
        }
        self.unidle(gid);
        self.maybe_free(gid, l);
    }

    /// Sets a group's own limits (and places it again).
    pub fn set_own(&mut self, gid: u32, own: Limits, l: &QueueLimits) {
        if let Some(g) = self.group_mut(gid) {
            g.own = own;
        }
        self.replace(gid, l);
    }

    /// Sets a group's own limits and window as an encoding carries them (both before the group may be
    /// freed for holding nothing).
    pub fn set_group(&mut self, gid: u32, own: Limits, times: VecDeque<u64>, l: &QueueLimits) {
        if let Some(g) = self.group_mut(gid) {
            g.own = own;
            g.window = Window(times);
        }
        self.replace(gid, l);
    }

    /// The eligible groups in the ring, in turn order (what the encodings carry, by name).
    pub fn ring_order(&self, l: &QueueLimits) -> Vec<u32> {
        self.ring
            .iter()
            .filter(|&(&t, &g)| self.group(g).is_some_and(|gr| gr.slot == Slot::Ring(t) && gr.eligible(l)))
            .map(|(_, &g)| g)
            .collect()
    }

    /// Puts these groups at the front of the ring in this order (an encoding's ring; the rest follow).
    pub fn restore_ring(&mut self, order: &[u32], l: &QueueLimits) {
        let rest: Vec<u32> = self.ring.values().copied().filter(|g| !order.contains(g)).collect();
        for &gid in order.iter().chain(rest.iter()) {
            if self.group(gid).is_some_and(|g| matches!(g.slot, Slot::Ring(_))) {
                self.unslot(gid);
                self.place(gid, l);
            }
        }
    }

    /// Takes every group's count of ready (or delayed, or dead) jobs to 0 (PURGE) and frees the groups left
    /// with nothing; O(groups).
    pub fn purge(&mut self, state: crate::State, l: &QueueLimits) {
        use crate::State;
        let gids: Vec<u32> = self.gids_by_name().collect();
        for gid in gids {
            if let Some(g) = self.group_mut(gid) {
                match state {
                    State::Ready => g.ready = 0,
                    State::Delayed => g.delayed = 0,
                    State::Dead => g.dead = 0,
                    State::Waiting => g.waiting = 0,
                    State::Reserved | State::Completed | State::Cancelled => {}
                }
            }
            if state == State::Ready {
                self.unslot(gid);
            }
            self.maybe_free(gid, l);
        }
    }

    pub fn bytes(&self) -> usize {
        // A map entry and a name-index entry per group, each with a share of its B-tree node.
        let per_group = std::mem::size_of::<Group>() + 96;
        let groups = super::sample::sampled(
            self.named.len() + 1,
            self.all().map(|(_, g)| per_group + g.name.len() * 2 + g.window.0.len() * 8),
        );
        groups + (self.ring.len() + self.waiting.len() + self.idle.len()) * 24 + self.window.0.len() * 8
    }

    /// Checks the group counts against the jobs (after loading untrusted input).
    /// `counts` are (ready, delayed, reserved, dead, waiting) of the jobs readers see, by group.
    pub fn check(&self, counts: &std::collections::HashMap<u32, [u64; 5]>) -> Result<(), String> {
        if counts.keys().any(|&g| self.group(g).is_none()) {
            return Err("a job names a group that does not exist".into());
        }
        for (gid, g) in self.all() {
            let c = counts.get(&gid).copied().unwrap_or_default();
            if c != [g.ready, g.delayed, g.reserved, g.dead, g.waiting] {
                return Err(format!("group '{}' counts disagree with its jobs", String::from_utf8_lossy(&g.name)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
