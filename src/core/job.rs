//! One job and the names of its states.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Ready,
    Delayed,
    Reserved,
    Dead,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Delayed => "delayed",
            State::Reserved => "reserved",
            State::Dead => "dead",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            State::Ready => 0,
            State::Delayed => 1,
            State::Reserved => 2,
            State::Dead => 3,
        }
    }

    pub fn from_code(code: u64) -> Option<State> {
        match code {
            0 => Some(State::Ready),
            1 => Some(State::Delayed),
            2 => Some(State::Reserved),
            3 => Some(State::Dead),
            _ => None,
        }
    }

    pub fn from_name(name: &[u8]) -> Option<State> {
        match name {
            b"ready" => Some(State::Ready),
            b"delayed" => Some(State::Delayed),
            b"reserved" => Some(State::Reserved),
            b"dead" => Some(State::Dead),
            _ => None,
        }
    }
}

/// A job's public id: either one the client chose, or the server's `<created-ms>-<seq>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobId {
    Custom(Box<[u8]>),
    Server { created_ms: u64, seq: u64 },
}

impl JobId {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            JobId::Custom(b) => b.to_vec(),
            JobId::Server { created_ms, seq } => format!("{created_ms}-{seq}").into_bytes(),
        }
    }

    /// Reads `<ms>-<seq>` in its canonical form only, so that "01-2" is never the same id as "1-2".
    pub fn parse_server(id: &[u8]) -> Option<(u64, u64)> {
        let dash = id.iter().position(|&b| b == b'-')?;
        let ms = parse_canonical_u64(&id[..dash])?;
        let seq = parse_canonical_u64(&id[dash + 1..])?;
        Some((ms, seq))
    }
}

fn parse_canonical_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Queue-unique sequence number: the handle every index uses.
    pub seq: u64,
    pub created_ms: u64,
    pub custom_id: Option<Box<[u8]>>,
    pub payload: Box<[u8]>,
    pub state: State,
    /// Reservations so far.
    pub attempts: u32,
    /// How many times a failed job is tried again.
    pub retries: u32,
    pub backoff_ms: u64,
    /// The job's own lease; 0 means the module default at reserve time.
    pub lease_ms: u64,
    pub priority: i32,
    /// When a delayed job falls due, or when a reserved job's lease runs out; 0 otherwise.
    pub deadline_ms: u64,
    pub last_error: Option<Box<[u8]>>,
}

impl Job {
    pub fn id(&self) -> JobId {
        match &self.custom_id {
            Some(c) => JobId::Custom(c.clone()),
            None => JobId::Server { created_ms: self.created_ms, seq: self.seq },
        }
    }

    pub fn id_bytes(&self) -> Vec<u8> {
        self.id().to_bytes()
    }

    pub fn due_ms(&self) -> Option<u64> {
        (self.state == State::Delayed).then_some(self.deadline_ms)
    }

    pub fn lease_deadline_ms(&self) -> Option<u64> {
        (self.state == State::Reserved).then_some(self.deadline_ms)
    }

    /// Rough heap bytes owned by this job, for MEMORY USAGE.
    pub fn heap_bytes(&self) -> usize {
        self.payload.len()
            + self.custom_id.as_ref().map_or(0, |c| c.len())
            + self.last_error.as_ref().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_parse_only_in_canonical_form() {
        assert_eq!(JobId::parse_server(b"17-3"), Some((17, 3)));
        assert_eq!(JobId::parse_server(b"017-3"), None);
        assert_eq!(JobId::parse_server(b"17-"), None);
        assert_eq!(JobId::parse_server(b"-3"), None);
        assert_eq!(JobId::parse_server(b"1a-3"), None);
        assert_eq!(JobId::parse_server(b"99999999999999999999999-1"), None);
        assert_eq!(JobId::Server { created_ms: 5, seq: 0 }.to_bytes(), b"5-0".to_vec());
    }
}
