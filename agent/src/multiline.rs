//! Lines into logs: one log per line, or LoongCollector's `Multiline` (a start, continue
//! and end pattern, each matched against the whole line).
//!
//! Every log carries the file offset just past its last line: a file is checkpointed at
//! the end of the last log that was acknowledged, and a log still being assembled (or a
//! partial line) is read again after a restart.

use crate::config::Multiline;

/// Logs cut from a file: their texts (lines joined by `\n`) one after the other in one
/// buffer (no allocation per log), each with the file offset after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cuts {
    text: Vec<u8>,
    /// How much of `text` holds logs (a read buffer is longer than what was read).
    len: usize,
    /// (start, length) in `text`, and the end offset in the file.
    cuts: Vec<(usize, usize, u64)>,
}

impl Cuts {
    /// Cuts that are ranges of `text[..len]`, a read buffer (single lines: no copy).
    pub fn over(text: Vec<u8>, len: usize, cuts: Vec<(usize, usize, u64)>) -> Self {
        Self { text, len, cuts }
    }

    pub fn push(&mut self, text: &[u8], end: u64) {
        self.text.truncate(self.len);
        let start = self.text.len();
        self.text.extend_from_slice(text);
        self.len = self.text.len();
        self.cuts.push((start, text.len(), end));
    }

    pub fn is_empty(&self) -> bool {
        self.cuts.is_empty()
    }

    /// The buffer underneath, to be used again.
    pub fn into_text(self) -> Vec<u8> {
        self.text
    }

    /// Whether every log's text is valid UTF-8 (checked over the whole buffer at once).
    pub fn all_utf8(&self) -> bool {
        std::str::from_utf8(&self.text[..self.len]).is_ok()
    }

    /// Each log's text and end offset, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.cuts.iter().map(|&(start, len, end)| (&self.text[start..start + len], end))
    }
}

#[derive(Debug)]
pub struct Assembler {
    rules: Option<Multiline>,
    /// The record being assembled: its lines, where it starts, where its last line ends.
    pending: Vec<u8>,
    pending_start: u64,
    pending_end: u64,
    pending_lines: usize,
}

impl Assembler {
    pub fn new(rules: Option<Multiline>) -> Self {
        Self { rules, pending: Vec::new(), pending_start: 0, pending_end: 0, pending_lines: 0 }
    }

    /// The offset where what is not yet cut starts, given the offset read up to when nothing
    /// is pending.
    pub fn holds_from(&self) -> Option<u64> {
        (self.pending_lines > 0).then_some(self.pending_start)
    }

    /// Forgets what is pending (the file was truncated; it is read again from elsewhere).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.pending_lines = 0;
    }

    /// Takes one line (without its newline) that spans `[start, end)` in the file.
    pub fn push(&mut self, line: &[u8], start: u64, end: u64, out: &mut Cuts) {
        let Some(rules) = &self.rules else {
            out.push(line, end);
            return;
        };
        let text = String::from_utf8_lossy(line);
        let is = |re: &Option<regex::Regex>| re.as_ref().is_some_and(|r| r.is_match(&text));
        let (starts, continues, ends) = (is(&rules.start), is(&rules.continue_), is(&rules.end));
        let (has_start, has_continue, has_end) =
            (rules.start.is_some(), rules.continue_.is_some(), rules.end.is_some());
        let discard = rules.discard_unmatched;

        if has_start {
            if starts {
                if self.pending_lines > 0 {
                    // A record that needed an end and never got one is unmatched content.
                    let complete = !has_end;
                    self.emit(complete, discard, out);
                }
                self.begin(line, start, end);
                if has_end && ends {
                    self.emit(true, discard, out);
                }
            } else if self.pending_lines > 0 {
                if has_end {
                    self.append(line, end);
                    if ends {
                        self.emit(true, discard, out);
                    }
                } else if has_continue && !continues {
                    self.emit(true, discard, out);
                    unmatched(line, end, discard, out);
                } else {
                    self.append(line, end);
                }
            } else {
                unmatched(line, end, discard, out);
            }
        } else if has_continue {
            // Continue (+ end): a run of continue lines, closed by an end line if there is one.
            if ends {
                if self.pending_lines == 0 {
                    self.begin(line, start, end);
                } else {
                    self.append(line, end);
                }
                self.emit(true, discard, out);
            } else if continues {
                if self.pending_lines == 0 {
                    self.begin(line, start, end);
                } else {
                    self.append(line, end);
                }
            } else {
                if self.pending_lines > 0 {
                    self.emit(!has_end, discard, out);
                }
                unmatched(line, end, discard, out);
            }
        } else {
            // End only: everything up to an end line.
            if self.pending_lines == 0 {
                self.begin(line, start, end);
            } else {
                self.append(line, end);
            }
            if ends {
                self.emit(true, discard, out);
            }
        }
    }

    /// Cuts what is pending as a log (the flush timeout passed, or the file was closed).
    pub fn flush(&mut self, out: &mut Cuts) {
        if self.pending_lines > 0 {
            out.push(&self.pending, self.pending_end);
            self.pending.clear();
            self.pending_lines = 0;
        }
    }

    fn begin(&mut self, line: &[u8], start: u64, end: u64) {
        self.pending.clear();
        self.pending.extend_from_slice(line);
        self.pending_start = start;
        self.pending_end = end;
        self.pending_lines = 1;
    }

    fn append(&mut self, line: &[u8], end: u64) {
        self.pending.push(b'\n');
        self.pending.extend_from_slice(line);
        self.pending_end = end;
        self.pending_lines += 1;
    }

    /// Cuts the pending record: as one log when it is complete, else line by line as
    /// unmatched content.
    fn emit(&mut self, complete: bool, discard: bool, out: &mut Cuts) {
        let text = std::mem::take(&mut self.pending);
        let end = self.pending_end;
        self.pending_lines = 0;
        if complete {
            out.push(&text, end);
        } else if discard {
            // Dropped, as configured; the offset still moves past it.
            out.push(&[], end);
        } else {
            let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            let n = lines.len();
            for (i, l) in lines.into_iter().enumerate() {
                // Only the last line's end is known exactly; the earlier ones travel with it.
                out.push(l, if i + 1 == n { end } else { self.pending_start });
            }
        }
        self.pending = text;
        self.pending.clear();
    }
}

fn unmatched(line: &[u8], end: u64, discard: bool, out: &mut Cuts) {
    out.push(if discard { &[] } else { line }, end);
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn re(p: &str) -> Option<Regex> {
        Some(Regex::new(&format!("^(?:{p})$")).unwrap())
    }

    fn run(rules: Option<Multiline>, text: &str) -> (Vec<String>, Option<u64>) {
        let mut a = Assembler::new(rules);
        let mut out = Cuts::default();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            let end = offset + line.len() as u64;
            a.push(line.trim_end_matches('\n').as_bytes(), offset, end, &mut out);
            offset = end;
        }
        let held = a.holds_from();
        (out.iter().filter(|(t, _)| !t.is_empty()).map(|(t, _)| String::from_utf8(t.to_vec()).unwrap()).collect(), held)
    }

    const JAVA: &str = "2025-01-01 10:00:00 ERROR boom\njava.lang.Exception: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\n\
                        2025-01-01 10:00:01 INFO ok\n2025-01-01 10:00:02 WARN w\n\tat g.h(I.java:3)\n";

    #[test]
    fn start_pattern_joins_stack_traces_and_holds_the_last_record() {
        let rules = Multiline { start: re(r"\d+-\d+-\d+ .*"), continue_: None, end: None, discard_unmatched: false };
        let (logs, held) = run(Some(rules), JAVA);
        assert_eq!(
            logs,
            vec![
                "2025-01-01 10:00:00 ERROR boom\njava.lang.Exception: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)",
                "2025-01-01 10:00:01 INFO ok"
            ]
        );
        // The WARN record may still grow: it is held, and the checkpoint stays before it.
        let warn_at = JAVA.find("2025-01-01 10:00:02").unwrap() as u64;
        assert_eq!(held, Some(warn_at));
    }

    #[test]
    fn start_and_end() {
        let rules = Multiline { start: re(r"BEGIN.*"), continue_: None, end: re(r"END"), discard_unmatched: false };
        let (logs, held) = run(Some(rules), "noise\nBEGIN 1\na\nEND\nstray\nBEGIN 2\nb\n");
        assert_eq!(logs, vec!["noise", "BEGIN 1\na\nEND", "stray"]);
        assert!(held.is_some());
    }

    #[test]
    fn start_and_continue() {
        let rules = Multiline { start: re(r"\S.*"), continue_: re(r"\s+.*"), end: None, discard_unmatched: false };
        let (logs, _) = run(Some(rules), "a\n  b\n  c\nd\n  e\n");
        assert_eq!(logs, vec!["a\n  b\n  c"]);
    }

    #[test]
    fn end_only_and_discarding_unmatched() {
        let rules = Multiline { start: None, continue_: None, end: re(r".*;"), discard_unmatched: false };
        let (logs, held) = run(Some(rules), "select\n1;\nselect 2;\nopen\n");
        assert_eq!(logs, vec!["select\n1;", "select 2;"]);
        assert_eq!(held, Some(20));
        let rules = Multiline { start: re("S.*"), continue_: None, end: None, discard_unmatched: true };
        let (logs, _) = run(Some(rules), "junk\nS1\nx\nS2\n");
        assert_eq!(logs, vec!["S1\nx"]);
    }

    #[test]
    fn single_lines_pass_through() {
        let (logs, held) = run(None, "a\nb\n");
        assert_eq!(logs, vec!["a", "b"]);
        assert_eq!(held, None);
    }
}
