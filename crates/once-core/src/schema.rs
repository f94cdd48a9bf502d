//! How a stored thing describes its numbers: each field with its name, its range and how to read and write it.
//! The tables sit beside their types (`job::JOB_FIELDS`, `queue::totals::TOTAL_FIELDS`,
//! `schedule::SCHEDULE_FIELDS`, `settings::SETTING_FIELDS`). RDB save/load, the replicated and AOF encoding,
//! the digest and the STATS reply walk them, so a new field is one edit there and every path agrees on its
//! range: nothing can be saved that cannot be loaded.

use super::limits::Range;

pub struct Field<T> {
    pub range: Range,
    pub get: fn(&T) -> i64,
    pub set: fn(&mut T, i64),
}

impl<T> Field<T> {
    pub fn name(&self) -> &'static str {
        self.range.name
    }

    /// Checks `v` against the range, then stores it.
    pub fn put(&self, target: &mut T, v: i64) -> Result<(), String> {
        (self.set)(target, self.range.check_i64(v)?);
        Ok(())
    }
}
