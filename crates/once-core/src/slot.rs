//! The cluster hash slot of a key (CRC16-XMODEM of the key or of its `{hash tag}`, mod 16384), as the server
//! computes it. Redis 7.0 offers modules no slot function, and does not check the slots of a module command's
//! keyword-introduced keys itself, so commands over several queues check them here.

/// CRC16-CCITT (XMODEM), bit by bit: keys are short, and a table would be 512 bytes for nothing.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&c| c == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|&c| c == b'}')?;
        (close > 0).then(|| &key[open + 1..open + 1 + close])
    });
    crc16(tagged.unwrap_or(key)) & 16383
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_server() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"a"), 15495);
        assert_eq!(key_slot(b"b"), 3300);
        assert_eq!(key_slot(b"{a}x"), 15495);
        assert_eq!(key_slot(b"foo{}{a}"), 7113);
        assert_eq!(key_slot(b"{}a"), crc16(b"{}a") & 16383);
        assert_eq!(key_slot(b"123456789"), 12739);
    }

    #[test]
    fn key_slots_match_the_cluster_spec() {
        // CLUSTER KEYSLOT of each key on a real cluster.
        for (key, slot) in [
            (&b"123456789"[..], 12739),
            (b"foo", 12182),
            (b"{user1000}.following", 3443),
            (b"user1000", 3443),
            (b"foo{}{bar}", 8363), // an empty first tag: the whole key is hashed
            (b"{}x", 10595),
            (b"a{b}c{d}", 3300), // only the first tag counts
            (b"{tag}:busy", 8338),
        ] {
            assert_eq!(key_slot(key), slot, "{}", String::from_utf8_lossy(key));
        }
    }
}
