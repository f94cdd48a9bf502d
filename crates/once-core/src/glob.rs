//! Glob patterns as Redis reads them (SCAN MATCH, KEYS): `*` any run of bytes, `?` one byte, `[abc]`, `[a-z]`,
//! `[^x]` one byte of (or not of) a set, `\x` the byte x itself.
//!
//! Written here rather than taken from a crate: the glob crates follow shell or path rules (`/` is special,
//! `[!x]` negates, classes are Unicode), none follows Redis's byte rules with their edge cases, and Redis's
//! own `stringmatchlen` recurses on each `*`. This one parses the pattern once into byte sets (the bracket
//! parse is Redis's, edge cases included), then matches with a single backtrack point: O(text × pattern) at
//! worst, no recursion. Ranges compare bytes unsigned (Redis compares `char`, signed on x86, so its ranges
//! across 0x80 differ), and `*` also matches the empty text (Redis's `*` does not match an empty string).

/// One position of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// Any run of bytes, the empty one included.
    Star,
    /// One byte of the set: 256 bits.
    One([u64; 4]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

fn set_of(b: u8) -> [u64; 4] {
    let mut s = [0u64; 4];
    add(&mut s, b);
    s
}

fn add(s: &mut [u64; 4], b: u8) {
    s[usize::from(b >> 6)] |= 1 << (b & 63);
}

fn has(s: &[u64; 4], b: u8) -> bool {
    s[usize::from(b >> 6)] & (1 << (b & 63)) != 0
}

impl Glob {
    pub fn new(pattern: &[u8]) -> Glob {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                b'?' => tokens.push(Token::One([u64::MAX; 4])),
                b'[' => {
                    let (set, next) = class(pattern, i + 1);
                    tokens.push(Token::One(set));
                    i = next;
                    continue;
                }
                // A lone `\` at the end stands for itself, as in Redis.
                b'\\' if i + 1 < pattern.len() => {
                    i += 1;
                    tokens.push(Token::One(set_of(pattern[i])));
                }
                b => tokens.push(Token::One(set_of(b))),
            }
            i += 1;
        }
        Glob { tokens }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &[u8]) -> bool {
        self.matches_counting(text).0
    }

    /// Whether the whole of `text` matches, and the steps that took (at least one per byte of text; at most
    /// text × pattern): what a caller with a budget counts.
    pub fn matches_counting(&self, text: &[u8]) -> (bool, usize) {
        let t = &self.tokens;
        let (mut p, mut s, mut steps) = (0, 0, 0usize);
        // The last `*` seen and where in the text it now ends: on a mismatch it takes one byte more.
        let mut star: Option<(usize, usize)> = None;
        while s < text.len() {
            steps += 1;
            match t.get(p) {
                Some(Token::Star) => {
                    star = Some((p + 1, s));
                    p += 1;
                }
                Some(Token::One(set)) if has(set, text[s]) => {
                    p += 1;
                    s += 1;
                }
                _ => match star {
                    Some((after, from)) => {
                        star = Some((after, from + 1));
                        p = after;
                        s = from + 1;
                    }
                    None => return (false, steps),
                },
            }
        }
        (t[p..].iter().all(|tok| *tok == Token::Star), steps.max(1))
    }
}

/// The set of a bracket whose body starts at `i`, and where the pattern goes on after it. As Redis: `^` first
/// negates; `\x` is x; `a-z` is a range (either way round) when two more bytes follow the `a`, even if the
/// second is the closing `]`; a bracket left open takes every byte to the end of the pattern.
fn class(p: &[u8], mut i: usize) -> ([u64; 4], usize) {
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut set = [0u64; 4];
    while i < p.len() {
        let left = p.len() - i;
        if p[i] == b'\\' && left >= 2 {
            add(&mut set, p[i + 1]);
            i += 2;
        } else if p[i] == b']' {
            i += 1;
            break;
        } else if left >= 3 && p[i + 1] == b'-' {
            let (a, b) = (p[i].min(p[i + 2]), p[i].max(p[i + 2]));
            for c in a..=b {
                add(&mut set, c);
            }
            i += 3;
        } else {
            add(&mut set, p[i]);
            i += 1;
        }
    }
    if negate {
        for w in &mut set {
            *w = !*w;
        }
    }
    (set, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern.as_bytes()).matches(text.as_bytes())
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", "anything") && m("*", "") && m("**", "x") && m("a*", "a") && m("*a", "a"));
        assert!(m("h*o", "hello") && m("h*l*o", "hello") && m("*ll*", "hello") && !m("h*x", "hello"));
        assert!(m("h?llo", "hello") && !m("h?llo", "hllo") && m("???", "abc") && !m("???", "ab"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx") && !m("*a*b*c*", "xxcxxbxxaxx"));
        assert!(m("a*b", "aXXbXXb") && !m("a*b", "aXXbXXc"));
        assert!(m("hello", "hello") && !m("hello", "hello!") && !m("hello", "hell"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("[z-a]", "m"), "a range either way round");
        assert!(m("[a-c-e]x", "-x") && m("[a-c-e]x", "ex") && !m("[a-c-e]x", "dx"), "after a range, `-e` is two bytes");
        assert!(m("[\\]]", "]") && m("[\\-]", "-") && m("[a\\-c]", "-") && !m("[a\\-c]", "b"));
        assert!(!m("[]", "]") && !m("[]x", "x"), "`[]` is an empty set");
        assert!(m("[^]", "q"), "`[^]` is every byte");
        assert!(m("[abc", "b") && !m("[abc", "d"), "an open bracket takes the rest");
        assert!(m("[a-]x", "]"), "as Redis: `a-]` is a range to `]`, and the bracket is left open");
        assert!(m("[?*]", "?") && m("[?*]", "*") && !m("[?*]", "a"));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*") && !m("\\*", "a") && m("a\\?b", "a?b") && !m("a\\?b", "axb"));
        assert!(m("\\[x]", "[x]") && m("\\\\", "\\") && m("a\\", "a\\"), "a trailing `\\` is itself");
        assert!(m("\\a", "a"));
    }

    #[test]
    fn bytes_not_characters() {
        let g = Glob::new(b"\xff?\x00*");
        assert!(g.matches(b"\xff\x80\x00") && g.matches(b"\xff\x01\x00rest") && !g.matches(b"\xfe\x01\x00"));
        assert!(Glob::new(b"[\x80-\xff]").matches(b"\x90") && !Glob::new(b"[\x80-\xff]").matches(b"a"));
        assert!(Glob::new("caf\u{e9}*".as_bytes()).matches("caf\u{e9} au lait".as_bytes()));
    }

    #[test]
    fn long_texts_match_in_bounded_steps() {
        // Redis's recursive matcher is exponential on this without its safeguards; here it is one pass per star.
        let text = vec![b'a'; 100_000];
        let g = Glob::new(b"*a*a*a*a*a*a*a*a*b");
        let (matched, steps) = g.matches_counting(&text);
        assert!(!matched && steps <= 2 * text.len() + 20, "{steps}");
        assert!(Glob::new(b"*a*a*a*a*a*a*a*a").matches(&text));
        // the worst case is text × pattern, and the count says so
        let (matched, steps) = Glob::new(b"*aaaaaaab").matches_counting(&text);
        assert!(!matched && steps > 7 * (text.len() - 8), "{steps}");
        assert_eq!(Glob::new(b"x*").matches_counting(b"yyyy"), (false, 1));
    }
}
