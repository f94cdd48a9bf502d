//! The queue as an encoding writes it: every job in an order that rebuilds the queue when inserted again,
//! fresh ready jobs gathered into runs (`run.rs`) straight from their packed records.

use super::super::flow::DEFAULT_GROUP;
use super::super::run::{read_run, RunHead, RunWriter};
use super::super::table::JobRef;
use super::Queue;

/// One item of a save: a run of fresh ready jobs, or a job on its own.
pub enum Item<'a> {
    Run(&'a RunWriter),
    Job(JobRef<'a>),
}

impl Queue {
    /// Hands every job to `emit` in rebuild order (as `jobs_in_rebuild_order`), each packed job inside a run.
    /// A walk, not a list: at most one run (64 KiB) is built at a time. An error (a packed record this
    /// process cannot read back) means the save must fail rather than leave the job out.
    pub fn each_rebuild_item(&self, emit: &mut dyn FnMut(Item<'_>)) -> Result<(), String> {
        let mut run: Option<(u32, RunWriter)> = None;
        let flush = |run: &mut Option<(u32, RunWriter)>, emit: &mut dyn FnMut(Item<'_>)| {
            if let Some((_, w)) = run.take() {
                emit(Item::Run(&w));
            }
        };
        for line in self.lines_in_rebuild_order() {
            let mut reader = self.jobs.reader();
            for seq in line.iter() {
                let Some(p) = reader.packed(seq) else {
                    flush(&mut run, emit);
                    let j = reader.get(seq).ok_or_else(|| format!("ready job seq {seq} cannot be read"))?;
                    emit(Item::Job(j));
                    continue;
                };
                match &mut run {
                    Some((class, w)) if *class == p.class && w.has_room() => {
                        w.push(seq, p.created_ms, p.since_ms, p.id, p.payload);
                        continue;
                    }
                    _ => flush(&mut run, emit),
                }
                let c = reader.class(p.class).ok_or_else(|| format!("packed job seq {seq} has no class"))?;
                let mut w = RunWriter::new(RunHead::of_class(&c), c.group);
                w.push(seq, p.created_ms, p.since_ms, p.id, p.payload);
                run = Some((p.class, w));
            }
        }
        flush(&mut run, emit);
        for j in self.others_in_rebuild_order() {
            emit(Item::Job(JobRef::Borrowed(j)));
        }
        Ok(())
    }

    /// Inserts a run as an encoding wrote it (group None: the default group): what `insert` does for each of
    /// its jobs, without making a `Job` of any (a load of millions spends most of its time here).
    pub fn insert_run(&mut self, head: RunHead, group: Option<&[u8]>, n: u64, blob: &[u8]) -> Result<(), String> {
        let gid = group.map_or(DEFAULT_GROUP, |name| self.flow.gid_or_new(name));
        let class = head.class(gid);
        read_run(n, blob, |mut f| {
            self.check_new(f.seq, f.created_ms, f.id).map_err(|e| e.to_string())?;
            f.pos = self.enqueue_ready(f.seq, gid, head.priority);
            if let Some(id) = f.id {
                self.custom_ids.insert(id.into(), f.seq);
            }
            self.next_seq = self.next_seq.max(f.seq + 1);
            match self.jobs.insert_fresh(&f, class) {
                true => Ok(()),
                false => Err(format!("job seq {} already exists", f.seq)),
            }
        })
    }
}
