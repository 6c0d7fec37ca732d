//! The native processors of a pipeline, in order: regex, JSON and delimiter parsing into
//! fields, and the log's time from a field (`strptime` format, `GMT+HH:MM` zone).
//!
//! They follow LoongCollector: a parser that fails drops its source field unless
//! `KeepingSourceWhenParseFail`; a log left with no fields is not sent (and is counted).

use chrono::format::{Parsed, StrftimeItems, parse_and_remainder};
use serde_json::Value;

use crate::config::{Overflow, Processor, SourcePolicy};

/// A log on its way to a LogGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub time_secs: u32,
    pub time_ns: u32,
    pub fields: Vec<(String, String)>,
}

impl Log {
    pub fn new(content: String, time_secs: u32, time_ns: u32) -> Self {
        Self { time_secs, time_ns, fields: vec![("content".to_owned(), content)] }
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(i).1)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: String, value: String) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key, value)),
        }
    }
}

/// What processing did to one log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub parse_failures: u32,
}

/// Runs every processor on `log`.
pub fn run(processors: &[Processor], log: &mut Log) -> Outcome {
    let mut outcome = Outcome::default();
    for p in processors {
        let ok = match p {
            Processor::Regex { source, regex, keys } => parse_with(log, source, |text| {
                let caps = regex.captures(text)?;
                Some(
                    keys.iter()
                        .zip(caps.iter().skip(1))
                        .map(|(k, m)| (k.clone(), m.map_or("", |m| m.as_str()).to_owned()))
                        .collect(),
                )
            }),
            Processor::Json { source } => parse_with(log, source, |text| {
                let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else { return None };
                Some(
                    map.into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::String(s) => s,
                                other => other.to_string(),
                            };
                            (k, v)
                        })
                        .collect(),
                )
            }),
            Processor::Delimiter { source, separator, quote, keys, allow_short, overflow } => {
                parse_with(log, source, |text| {
                    let values = split_delimited(text, separator, *quote)?;
                    if values.len() < keys.len() && !allow_short {
                        return None;
                    }
                    let mut fields: Vec<(String, String)> = keys.iter().cloned().zip(values.iter().cloned()).collect();
                    if values.len() > keys.len() {
                        let extra = &values[keys.len()..];
                        match overflow {
                            Overflow::Extend => fields
                                .extend(extra.iter().enumerate().map(|(i, v)| (format!("__column{i}__"), v.clone()))),
                            Overflow::Keep => fields.push(("__column0__".into(), extra.join(separator))),
                            Overflow::Discard => {}
                        }
                    }
                    Some(fields)
                })
            }
            Processor::Timestamp { source_key, format, offset_secs, year } => {
                match log.get(source_key).and_then(|v| parse_time(v, format, *offset_secs, *year, log.time_secs)) {
                    Some((secs, ns)) => {
                        log.time_secs = secs;
                        log.time_ns = ns;
                        true
                    }
                    None => false,
                }
            }
        };
        if !ok {
            outcome.parse_failures += 1;
        }
    }
    outcome
}

/// Applies a parser to the source field with LoongCollector's keep/rename rules.
fn parse_with(log: &mut Log, policy: &SourcePolicy, parse: impl FnOnce(&str) -> Option<Vec<(String, String)>>) -> bool {
    let Some(source) = log.take(&policy.source_key) else { return false };
    let parsed = parse(&source);
    let ok = parsed.is_some();
    let keep = if ok { policy.keep_on_success } else { policy.keep_on_fail };
    for (k, v) in parsed.unwrap_or_default() {
        log.set(k, v);
    }
    if keep {
        let key = policy.renamed_source_key.clone().unwrap_or_else(|| policy.source_key.clone());
        log.set(key, source);
    }
    ok
}

/// Splits one delimited line; `None` when a quote is not closed.
fn split_delimited(text: &str, separator: &str, quote: Option<char>) -> Option<Vec<String>> {
    let Some(q) = quote.filter(|q| text.contains(*q)) else {
        return Some(text.split(separator).map(str::to_owned).collect());
    };
    let mut out = Vec::new();
    let mut field = String::new();
    let mut rest = text;
    let mut in_quotes = false;
    loop {
        if in_quotes {
            let mut chars = rest.char_indices();
            match chars.next() {
                None => return None,
                Some((_, c)) if c == q => {
                    let after = &rest[c.len_utf8()..];
                    if after.starts_with(q) {
                        field.push(q);
                        rest = &after[q.len_utf8()..];
                    } else {
                        in_quotes = false;
                        rest = after;
                    }
                }
                Some((_, c)) => {
                    field.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        } else if rest.is_empty() {
            out.push(std::mem::take(&mut field));
            return Some(out);
        } else if let Some(after) = rest.strip_prefix(separator) {
            out.push(std::mem::take(&mut field));
            rest = after;
        } else if rest.starts_with(q) && field.is_empty() {
            in_quotes = true;
            rest = &rest[q.len_utf8()..];
        } else {
            let c = rest.chars().next()?;
            field.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
}

/// Parses a time with a `strptime` format. Without a zone in the value, it is read in
/// `offset_secs` (else UTC); without a year, in `year` (else the year of `now_secs`).
pub fn parse_time(
    value: &str,
    format: &str,
    offset_secs: Option<i32>,
    year: Option<i32>,
    now_secs: u32,
) -> Option<(u32, u32)> {
    if format == "%s" {
        let secs: u32 = value.trim().parse().ok()?;
        return Some((secs, 0));
    }
    let mut parsed = Parsed::new();
    parse_and_remainder(&mut parsed, value, StrftimeItems::new(format)).ok()?;
    if parsed.year().is_none() && parsed.year_div_100().is_none() && parsed.year_mod_100().is_none() {
        let y = year.unwrap_or_else(|| {
            chrono::DateTime::from_timestamp(i64::from(now_secs), 0).map_or(1970, |t| chrono::Datelike::year(&t))
        });
        parsed.set_year(i64::from(y)).ok()?;
    }
    if parsed.hour_div_12().is_none() && parsed.hour_mod_12().is_none() {
        parsed.set_hour(0).ok()?;
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0).ok()?;
    }
    let offset = parsed.offset().unwrap_or(offset_secs.unwrap_or(0));
    let naive = parsed.to_naive_datetime_with_offset(offset).ok()?;
    let utc = naive.and_utc().timestamp() - i64::from(offset);
    let secs = u32::try_from(utc).ok()?;
    Some((secs, naive.and_utc().timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn policy(key: &str) -> SourcePolicy {
        SourcePolicy { source_key: key.into(), keep_on_fail: false, keep_on_success: false, renamed_source_key: None }
    }

    fn fields(log: &Log) -> Vec<(&str, &str)> {
        log.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn regex_then_timestamp() {
        let processors = vec![
            Processor::Regex {
                source: policy("content"),
                regex: Regex::new(r"^(?:\[(\S+)\] (\w+) (.*))$").unwrap(),
                keys: vec!["time".into(), "level".into(), "msg".into()],
            },
            Processor::Timestamp {
                source_key: "time".into(),
                format: "%Y-%m-%dT%H:%M:%S".into(),
                offset_secs: Some(8 * 3600),
                year: None,
            },
        ];
        let mut log = Log::new("[2025-01-01T08:00:05] INFO started".into(), 1, 0);
        assert_eq!(run(&processors, &mut log), Outcome::default());
        assert_eq!(fields(&log), vec![("time", "2025-01-01T08:00:05"), ("level", "INFO"), ("msg", "started")]);
        assert_eq!(log.time_secs, 1_735_689_605);

        let mut bad = Log::new("not it".into(), 7, 0);
        assert_eq!(run(&processors, &mut bad).parse_failures, 2);
        assert!(bad.fields.is_empty(), "the source is dropped when parsing fails, as LoongCollector does");
        assert_eq!(bad.time_secs, 7);
    }

    #[test]
    fn keeping_and_renaming_the_source() {
        let p = Processor::Json {
            source: SourcePolicy {
                source_key: "content".into(),
                keep_on_fail: true,
                keep_on_success: true,
                renamed_source_key: Some("raw".into()),
            },
        };
        let mut log = Log::new(r#"{"a":"x","n":3,"o":{"k":true}}"#.into(), 0, 0);
        run(std::slice::from_ref(&p), &mut log);
        assert_eq!(
            fields(&log),
            vec![("a", "x"), ("n", "3"), ("o", r#"{"k":true}"#), ("raw", r#"{"a":"x","n":3,"o":{"k":true}}"#)]
        );
        let mut bad = Log::new("{oops".into(), 0, 0);
        assert_eq!(run(&[p], &mut bad).parse_failures, 1);
        assert_eq!(fields(&bad), vec![("raw", "{oops")]);
    }

    #[test]
    fn delimited_with_quotes_and_overflow() {
        assert_eq!(split_delimited(r#"a,"b,c",d"#, ",", Some('"')).unwrap(), vec!["a", "b,c", "d"]);
        assert_eq!(split_delimited(r#"a,"say ""hi""",d"#, ",", Some('"')).unwrap(), vec!["a", r#"say "hi""#, "d"]);
        assert_eq!(split_delimited(r#"a,"open"#, ",", Some('"')), None);
        assert_eq!(split_delimited("a||b", "||", None).unwrap(), vec!["a", "b"]);
        let p = |overflow| Processor::Delimiter {
            source: policy("content"),
            separator: ",".into(),
            quote: Some('"'),
            keys: vec!["x".into(), "y".into()],
            allow_short: false,
            overflow,
        };
        let mut log = Log::new("1,2,3,4".into(), 0, 0);
        run(&[p(Overflow::Extend)], &mut log);
        assert_eq!(fields(&log), vec![("x", "1"), ("y", "2"), ("__column0__", "3"), ("__column1__", "4")]);
        let mut log = Log::new("1,2,3,4".into(), 0, 0);
        run(&[p(Overflow::Keep)], &mut log);
        assert_eq!(fields(&log), vec![("x", "1"), ("y", "2"), ("__column0__", "3,4")]);
        let mut short = Log::new("1".into(), 0, 0);
        assert_eq!(run(&[p(Overflow::Discard)], &mut short).parse_failures, 1);
    }

    #[test]
    fn times_in_the_formats_logs_use() {
        // nginx's $time_local carries its own zone.
        assert_eq!(
            parse_time("10/Oct/2025:13:55:36 +0800", "%d/%b/%Y:%H:%M:%S %z", None, None, 0),
            Some((1_760_075_736, 0))
        );
        // syslog has no year: the configured one, else this year's.
        assert_eq!(parse_time("Jan  2 03:04:05", "%b %e %H:%M:%S", None, Some(2024), 0), Some((1_704_164_645, 0)));
        assert_eq!(parse_time("1700000000", "%s", None, None, 0), Some((1_700_000_000, 0)));
        assert_eq!(
            parse_time("2025-01-01 00:00:00.250 trailing", "%Y-%m-%d %H:%M:%S%.f", Some(0), None, 0),
            Some((1_735_689_600, 250_000_000))
        );
        assert_eq!(parse_time("garbage", "%Y", None, None, 0), None);
    }
}
