//! SLS text matching, without DataFusion: whole tokens, wildcard tokens and phrases,
//! case-insensitively, over single strings and over a whole Arrow string buffer at once.
//!
//! A token is a run of characters between SLS's default delimiters
//! (`` ,'";=()[]{}?@&<>/:\n\t\r `` and space). A word or a phrase matches where it occurs
//! with a delimiter or the string's edge on both sides, so every token it holds is a whole
//! token of the text: what the token index ([`crate::lake::index`]) relies on, through
//! [`tokens`], the one tokenizer of the index and of queries.

pub use crate::lake::index::{is_delimiter, tokens};

/// What to find.
#[derive(Clone, Debug)]
pub enum Needle {
    /// A whole token, or a phrase of whole tokens (as SLS phrase search), lowercased.
    Word(Vec<u8>),
    /// A token matching `*`/`?` wildcards, lowercased.
    Pattern(Vec<u8>),
    /// The whole text, lowercased as SQL's `lower` does (Unicode).
    Equal(String),
}

impl Needle {
    pub fn word(term: &str) -> Self {
        Self::Word(term.to_lowercase().into_bytes())
    }
    /// A phrase: its tokens in order, whole, with the delimiters between them as written.
    pub fn phrase(term: &str) -> Self {
        Self::word(term)
    }
    pub fn pattern(term: &str) -> Self {
        Self::Pattern(term.to_lowercase().into_bytes())
    }
    /// Equality with `lower(text)`: `level: error` (a level is one word, compared whole).
    pub fn equal(term: &str) -> Self {
        Self::Equal(term.to_lowercase())
    }

    /// Whether `text` (any case) matches.
    pub fn matches(&self, text: &[u8]) -> bool {
        if let Self::Equal(term) = self {
            return equal_lowercase(text, term);
        }
        let lower = text.to_ascii_lowercase();
        self.matches_lowercase(&lower, 0, lower.len())
    }

    /// Whether the lowercased `buffer[start..end]` matches.
    pub fn matches_lowercase(&self, buffer: &[u8], start: usize, end: usize) -> bool {
        let text = &buffer[start..end];
        match self {
            Self::Word(w) => {
                if w.is_empty() {
                    return false;
                }
                // Occurrences may overlap (a word holding delimiters): step by one.
                let finder = memchr::memmem::Finder::new(w);
                let mut from = 0;
                while let Some(found) = finder.find(&text[from..]) {
                    if word_boundary(text, from + found, w) {
                        return true;
                    }
                    from += found + 1;
                }
                false
            }
            Self::Pattern(p) => text.split(|b| is_delimiter(*b)).any(|token| !token.is_empty() && glob(p, token)),
            Self::Equal(term) => equal_lowercase(text, term),
        }
    }

    /// For each row of a string array (`offsets` into `values`), whether it matches.
    /// The buffer is lowercased once and words and phrases are found with one search
    /// over it, so rows without a candidate cost nothing.
    pub fn match_rows(&self, values: &[u8], offsets: &[usize], out: &mut Vec<bool>) {
        let rows = offsets.len().saturating_sub(1);
        out.clear();
        out.resize(rows, false);
        if rows == 0 {
            return;
        }
        let base = offsets[0];
        if let Self::Equal(term) = self {
            for (row, hit) in out.iter_mut().enumerate() {
                *hit = equal_lowercase(&values[offsets[row]..offsets[row + 1]], term);
            }
            return;
        }
        let lower = values[base..offsets[rows]].to_ascii_lowercase();
        let row_of = |at: usize| offsets.partition_point(|&o| o - base <= at) - 1;
        match self {
            Self::Word(needle) => {
                if needle.is_empty() {
                    return;
                }
                let finder = memchr::memmem::Finder::new(needle);
                let mut from = 0usize;
                while let Some(found) = finder.find(&lower[from..]) {
                    let at = from + found;
                    let row = row_of(at);
                    let (start, end) = (offsets[row] - base, offsets[row + 1] - base);
                    if at + needle.len() > end {
                        // Across the end of a row: look again from the next row.
                        from = end;
                        continue;
                    }
                    if word_boundary(&lower[start..end], at - start, needle) {
                        out[row] = true;
                        from = end;
                    } else {
                        from = at + 1;
                    }
                }
            }
            Self::Pattern(_) | Self::Equal(_) => {
                for (row, hit) in out.iter_mut().enumerate() {
                    *hit = self.matches_lowercase(&lower, offsets[row] - base, offsets[row + 1] - base);
                }
            }
        }
    }
}

/// Whether `lower(text)` is `term` (lowercase): ASCII text byte by byte, other text as
/// Unicode lowercases it (as SQL's `lower`).
fn equal_lowercase(text: &[u8], term: &str) -> bool {
    if text.is_ascii() {
        return text.len() == term.len() && text.iter().zip(term.as_bytes()).all(|(a, b)| a.to_ascii_lowercase() == *b);
    }
    std::str::from_utf8(text).is_ok_and(|t| t.to_lowercase() == term)
}

/// Whether the word `needle` found at `at` in `text` is whole: a delimiter (or the
/// edge) on each side, or the word itself starts or ends with one (`/api` in `GET /api/v1`).
fn word_boundary(text: &[u8], at: usize, needle: &[u8]) -> bool {
    let len = needle.len();
    let before = at == 0 || is_delimiter(text[at - 1]) || needle.first().is_some_and(|b| is_delimiter(*b));
    let after =
        at + len == text.len() || is_delimiter(text[at + len]) || needle.last().is_some_and(|b| is_delimiter(*b));
    before && after
}

/// `*` matches any run, `?` one byte.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn words_are_whole_tokens_in_any_case() {
        let w = Needle::word("Error");
        assert!(w.matches(b"an error occurred"));
        assert!(w.matches(b"ERROR"));
        assert!(w.matches(b"status=error;"));
        assert!(!w.matches(b"errors occurred"));
        assert!(!w.matches(b"noerror"));
        assert!(Needle::word("10.0.0.1").matches(b"from 10.0.0.1:8080"));
        assert!(Needle::word("/api").matches(b"GET /api/v1"), "a word may hold delimiters");
        assert!(!Needle::word("/api").matches(b"GET /apiv1"));
        assert!(Needle::word("api").matches(b"GET /api/v1"));
    }

    #[test]
    fn patterns_and_phrases() {
        assert!(Needle::pattern("err*").matches(b"errors occurred"));
        assert!(Needle::pattern("*ound").matches(b"not found"));
        assert!(Needle::pattern("h?llo").matches(b"say Hello"));
        assert!(!Needle::pattern("err*").matches(b"an rerror"));
        assert!(Needle::phrase("Connection refused").matches(b"db: connection refused (111)"));
        assert!(!Needle::phrase("connection refused").matches(b"connection was refused"));
        assert!(!Needle::phrase("connection refused").matches(b"reconnection refused"), "whole tokens");
        assert!(!Needle::phrase("connection refused").matches(b"connection refusedx"));
        let t: Vec<&[u8]> = tokens(b"GET /api/v1?x=1  done").collect();
        assert_eq!(t, [&b"GET"[..], b"api", b"v1", b"x", b"1", b"done"]);
    }

    #[test]
    fn equality_is_with_the_lowercased_whole_text() {
        let e = Needle::equal("Error");
        assert!(e.matches(b"ERROR") && e.matches(b"error"));
        assert!(!e.matches(b"an error") && !e.matches(b"errors"));
        assert!(Needle::equal("\u{c9}tat").matches("\u{e9}TAT".as_bytes()), "as SQL's lower, Unicode");
        let (buffer, offsets) = rows(&["warn", "WARN", "warning", ""]);
        let mut out = Vec::new();
        Needle::equal("warn").match_rows(&buffer, &offsets, &mut out);
        assert_eq!(out, [true, true, false, false]);
    }

    fn rows(values: &[&str]) -> (Vec<u8>, Vec<usize>) {
        let mut buffer = Vec::new();
        let mut offsets = vec![0];
        for v in values {
            buffer.extend_from_slice(v.as_bytes());
            offsets.push(buffer.len());
        }
        (buffer, offsets)
    }

    proptest! {
        /// Matching a whole buffer at once agrees with matching row by row.
        #[test]
        fn buffers_agree_with_rows(
            texts in proptest::collection::vec("[a-cA-C :/=]{0,12}", 0..20),
            term in "[a-c/]{1,3}",
            kind in 0u8..4,
        ) {
            let needle = match kind {
                0 => Needle::word(&term),
                1 => Needle::phrase(&term),
                2 => Needle::pattern(&format!("{term}*")),
                _ => Needle::equal(&term),
            };
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let (buffer, offsets) = rows(&refs);
            let mut out = Vec::new();
            needle.match_rows(&buffer, &offsets, &mut out);
            let expected: Vec<bool> = texts.iter().map(|t| needle.matches(t.as_bytes())).collect();
            prop_assert_eq!(out, expected);
        }
    }
}
