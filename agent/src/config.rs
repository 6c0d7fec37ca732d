//! LoongCollector / iLogtail pipeline configs, read as they are: one YAML or JSON file
//! per pipeline in a config directory, with `inputs` (`input_file`), `processors` and
//! `flushers` (`flusher_sls`).
//!
//! Reading a file gives a [`Pipeline`] and a list of [`Issue`]s, each naming the file and
//! the key. An unknown key is a warning (the pipeline runs without it); an unknown plugin
//! type, a missing required key or a value of the wrong type is an error, and only that
//! pipeline stays stopped.

use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{Map, Value};

/// One pipeline: where its lines come from, how they are parsed and where they go.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// The config's name: its file name without the extension, as Logtail names configs.
    pub name: String,
    pub file: PathBuf,
    pub input: FileInput,
    pub processors: Vec<Processor>,
    pub flusher: SlsFlusher,
    pub topic: Topic,
}

#[derive(Clone, Debug)]
pub struct FileInput {
    pub file_paths: Vec<String>,
    pub max_dir_search_depth: usize,
    pub exclude_file_paths: Vec<String>,
    pub exclude_files: Vec<String>,
    pub exclude_dirs: Vec<String>,
    pub encoding: Encoding,
    pub tail_size_kb: u64,
    pub multiline: Option<Multiline>,
    pub flush_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Gbk,
}

/// `Multiline`: patterns matched against a whole line, as LoongCollector matches them.
#[derive(Clone, Debug)]
pub struct Multiline {
    pub start: Option<Regex>,
    pub continue_: Option<Regex>,
    pub end: Option<Regex>,
    /// `UnmatchedContentTreatment`: keep each unmatched line as its own log (`single_line`),
    /// or drop it (`discard`).
    pub discard_unmatched: bool,
}

/// What happens to the source field of a parser.
#[derive(Clone, Debug)]
pub struct SourcePolicy {
    pub source_key: String,
    pub keep_on_fail: bool,
    pub keep_on_success: bool,
    pub renamed_source_key: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Processor {
    Regex {
        source: SourcePolicy,
        regex: Regex,
        keys: Vec<String>,
    },
    Json {
        source: SourcePolicy,
    },
    Delimiter {
        source: SourcePolicy,
        separator: String,
        quote: Option<char>,
        keys: Vec<String>,
        allow_short: bool,
        overflow: Overflow,
    },
    Timestamp {
        source_key: String,
        format: String,
        offset_secs: Option<i32>,
        year: Option<i32>,
    },
}

/// `OverflowedFieldsTreatment` of the delimiter parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Extend,
    Keep,
    Discard,
}

#[derive(Clone, Debug)]
pub struct SlsFlusher {
    pub project: String,
    pub logstore: String,
    pub endpoint: String,
    pub region: Option<String>,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub shard_hash_keys: Vec<String>,
    pub compression: Compression,
    pub batch: BatchLimits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Lz4,
    Zstd,
}

/// When an open batch is sent: at `min_bytes` of content, `min_count` logs, or
/// `timeout_secs` after its first log (Logtail's 3 s). The defaults are twice Logtail's
/// 512 KiB group: half the requests cost the agent 0.4% of a core less at 10 MB/s
/// (2.6% against 3.0–3.3%), and each request is one raw batch object on the receiver's
/// storage, so half the PUTs. SLS takes log groups of up to 5 MB.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    pub min_bytes: usize,
    pub min_count: usize,
    pub timeout_secs: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { min_bytes: 1 << 20, min_count: 8192, timeout_secs: 3 }
    }
}

/// `__topic__`: none, a fixed string, or the first group of a regex over the file's path.
#[derive(Clone, Debug)]
pub enum Topic {
    None,
    Custom(String),
    FilePath(Regex),
}

impl Topic {
    pub fn for_path(&self, path: &str) -> String {
        match self {
            Self::None => String::new(),
            Self::Custom(t) => t.clone(),
            Self::FilePath(re) => re
                .captures(path)
                .and_then(|c| c.get(1).or_else(|| c.get(0)))
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// Something wrong in a config file, with the file and the key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub file: PathBuf,
    /// Where in the file: `inputs[0].Multiline.StartPattern`.
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The pipeline runs without this key.
    Warning,
    /// The pipeline does not run.
    Error,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        if self.key.is_empty() {
            write!(f, "{}: {level}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {level}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// Where credentials come from when a flusher has none: the Alibaba Cloud credential
/// variables, as the SDKs and `aliyun` CLI read them.
pub const ACCESS_KEY_ID_ENV: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ACCESS_KEY_SECRET_ENV: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";

/// Whether a directory entry is a pipeline config: `.yaml`, `.yml` or `.json`.
pub fn is_config_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

/// Reads one config file. `env` looks up environment variables (credentials).
/// `Ok(None)`: the pipeline is disabled (`enable: false`).
pub fn load(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> (Option<Pipeline>, Vec<Issue>) {
    let mut ctx = Ctx { file: path.to_owned(), issues: Vec::new() };
    let parsed: Result<Value, String> = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        yaml_serde::from_str(text).map_err(|e| e.to_string())
    };
    let root = match parsed {
        Ok(v) => v,
        Err(e) => {
            ctx.error(
                "",
                format!(
                    "not valid {}: {e}",
                    if path.extension().is_some_and(|e| e == "json") { "JSON" } else { "YAML" }
                ),
            );
            return (None, ctx.issues);
        }
    };
    let pipeline = ctx.pipeline(path, &root, env);
    let has_error = ctx.issues.iter().any(|i| i.severity == Severity::Error);
    (if has_error { None } else { pipeline }, ctx.issues)
}

struct Ctx {
    file: PathBuf,
    issues: Vec<Issue>,
}

/// An object's keys, each taken at most once, so that what is left is unknown.
struct Obj<'a> {
    at: String,
    map: &'a Map<String, Value>,
    taken: Vec<&'static str>,
}

impl Ctx {
    fn push(&mut self, key: &str, message: String, severity: Severity) {
        self.issues.push(Issue { file: self.file.clone(), key: key.to_owned(), message, severity });
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.push(key, message.into(), Severity::Error);
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.push(key, message.into(), Severity::Warning);
    }

    fn object<'a>(&mut self, at: &str, value: &'a Value) -> Option<Obj<'a>> {
        match value {
            Value::Object(map) => Some(Obj { at: at.to_owned(), map, taken: Vec::new() }),
            other => {
                self.error(at, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    /// Reports the keys of `obj` that nothing took.
    fn unknown_keys(&mut self, obj: &Obj<'_>, what: &str) {
        for key in obj.map.keys() {
            if !obj.taken.contains(&key.as_str()) {
                self.warn(&join(&obj.at, key), format!("unknown key for {what}, ignored"));
            }
        }
    }

    fn string(&mut self, obj: &mut Obj<'_>, key: &'static str) -> Option<String> {
        obj.taken.push(key);
        match obj.map.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.error(&join(&obj.at, key), format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    fn required_string(&mut self, obj: &mut Obj<'_>, key: &'static str) -> Option<String> {
        let value = self.string(obj, key);
        if value.is_none() && !obj.map.contains_key(key) {
            self.error(&join(&obj.at, key), "required");
        }
        value.filter(|v| !v.is_empty()).or_else(|| {
            if obj.map.get(key).is_some_and(|v| v.as_str() == Some("")) {
                self.error(&join(&obj.at, key), "must not be empty");
            }
            None
        })
    }

    fn bool(&mut self, obj: &mut Obj<'_>, key: &'static str, default: bool) -> bool {
        obj.taken.push(key);
        match obj.map.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.error(&join(&obj.at, key), format!("expected true or false, found {}", kind(other)));
                default
            }
        }
    }

    fn uint(&mut self, obj: &mut Obj<'_>, key: &'static str, default: u64, max: u64) -> u64 {
        obj.taken.push(key);
        match obj.map.get(key) {
            None => default,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= max) => n.as_u64().unwrap_or(default),
            Some(other) => {
                self.error(&join(&obj.at, key), format!("expected a whole number from 0 to {max}, found {other}"));
                default
            }
        }
    }

    fn strings(&mut self, obj: &mut Obj<'_>, key: &'static str) -> Vec<String> {
        obj.taken.push(key);
        match obj.map.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(
                            &format!("{}[{i}]", join(&obj.at, key)),
                            format!("expected a string, found {}", kind(other)),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.error(&join(&obj.at, key), format!("expected a list of strings, found {}", kind(other)));
                Vec::new()
            }
        }
    }

    fn regex(&mut self, obj: &mut Obj<'_>, key: &'static str) -> Option<Regex> {
        let pattern = self.string(obj, key).filter(|p| !p.is_empty())?;
        self.compile(&join(&obj.at, key), &pattern)
    }

    /// Compiles a pattern that must match a whole value, as LoongCollector's
    /// `regex_match` does.
    fn compile(&mut self, at: &str, pattern: &str) -> Option<Regex> {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                self.error(at, format!("not a valid regular expression: {e}"));
                None
            }
        }
    }

    fn list<'a>(&mut self, obj: &mut Obj<'a>, key: &'static str) -> Vec<(String, &'a Value)> {
        obj.taken.push(key);
        match obj.map.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                items.iter().enumerate().map(|(i, v)| (format!("{}[{i}]", join(&obj.at, key)), v)).collect()
            }
            Some(other) => {
                self.error(&join(&obj.at, key), format!("expected a list, found {}", kind(other)));
                Vec::new()
            }
        }
    }

    fn pipeline(&mut self, path: &Path, root: &Value, env: &dyn Fn(&str) -> Option<String>) -> Option<Pipeline> {
        let mut obj = self.object("", root)?;
        if !self.bool(&mut obj, "enable", true) {
            return None;
        }
        let inputs = self.list(&mut obj, "inputs");
        let processors = self.list(&mut obj, "processors");
        let flushers = self.list(&mut obj, "flushers");
        let topic = match obj.map.get("global") {
            Some(global) => {
                obj.taken.push("global");
                self.global(global)
            }
            None => Topic::None,
        };
        obj.taken.extend(["aggregators", "extensions", "createTime"]);
        for key in ["aggregators", "extensions"] {
            if obj.map.get(key).is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
                self.warn(key, format!("{key} are not supported by sluice-agent, ignored"));
            }
        }
        self.unknown_keys(&obj, "a pipeline");

        let input = match inputs.as_slice() {
            [] => {
                self.error("inputs", "required: one input_file");
                None
            }
            [(at, value)] => self.input(at, value),
            [(at, value), rest @ ..] => {
                for (at, _) in rest {
                    self.error(at, "only one input per pipeline is supported");
                }
                self.input(at, value)
            }
        };
        let processors: Vec<Processor> = processors.iter().filter_map(|(at, v)| self.processor(at, v)).collect();
        let flusher = match flushers.as_slice() {
            [] => {
                self.error("flushers", "required: one flusher_sls");
                None
            }
            [(at, value), rest @ ..] => {
                for (at, _) in rest {
                    self.error(at, "only one flusher per pipeline is supported");
                }
                self.flusher(at, value, env)
            }
        };
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pipeline").to_owned();
        Some(Pipeline { name, file: path.to_owned(), input: input?, processors, flusher: flusher?, topic })
    }

    fn global(&mut self, value: &Value) -> Topic {
        let Some(mut obj) = self.object("global", value) else { return Topic::None };
        let kind = self.string(&mut obj, "TopicType").unwrap_or_else(|| "none".into());
        let format = self.string(&mut obj, "TopicFormat");
        obj.taken.extend([
            "DefaultLogQueueSize",
            "DefaultLogGroupQueueSize",
            "Priority",
            "ProcessPriority",
            "EnableTimestampNanosecond",
        ]);
        let topic = match (kind.as_str(), format) {
            ("none" | "", _) => Topic::None,
            ("custom" | "machine_group_topic", Some(f)) => {
                Topic::Custom(f.strip_prefix("customized://").unwrap_or(&f).to_owned())
            }
            ("filepath", Some(f)) => match Regex::new(&f) {
                Ok(re) => Topic::FilePath(re),
                Err(e) => {
                    self.error("global.TopicFormat", format!("not a valid regular expression: {e}"));
                    Topic::None
                }
            },
            ("custom" | "filepath" | "machine_group_topic", None) => {
                self.error("global.TopicFormat", format!("required when TopicType is {kind}"));
                Topic::None
            }
            (other, _) => {
                self.error("global.TopicType", format!("unknown topic type {other:?} (none, custom, filepath)"));
                Topic::None
            }
        };
        self.unknown_keys(&obj, "global");
        topic
    }

    fn input(&mut self, at: &str, value: &Value) -> Option<FileInput> {
        let mut obj = self.object(at, value)?;
        let kind = self.required_string(&mut obj, "Type")?;
        if kind != "input_file" {
            self.error(
                &join(at, "Type"),
                format!("unknown input type {kind:?}: sluice-agent collects files (input_file)"),
            );
            return None;
        }
        let file_paths = self.strings(&mut obj, "FilePaths");
        if file_paths.is_empty() {
            self.error(&join(at, "FilePaths"), "required: at least one path");
        }
        for (i, p) in file_paths.iter().enumerate() {
            if !p.starts_with('/') {
                self.error(&format!("{}[{i}]", join(at, "FilePaths")), format!("{p:?} is not an absolute path"));
            }
        }
        let max_dir_search_depth = self.uint(&mut obj, "MaxDirSearchDepth", 0, 1000) as usize;
        let exclude_file_paths = self.strings(&mut obj, "ExcludeFilePaths");
        let exclude_files = self.strings(&mut obj, "ExcludeFiles");
        let exclude_dirs = self.strings(&mut obj, "ExcludeDirs");
        let encoding = match self.string(&mut obj, "FileEncoding").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("utf8" | "utf-8") => Encoding::Utf8,
            Some("gbk") => Encoding::Gbk,
            Some(other) => {
                self.error(&join(at, "FileEncoding"), format!("unknown encoding {other:?} (utf8, gbk)"));
                Encoding::Utf8
            }
        };
        let tail_size_kb = self.uint(&mut obj, "TailSizeKB", 1024, 10_485_760);
        let flush_timeout_secs = self.uint(&mut obj, "FlushTimeoutSecs", 5, 86_400);
        let multiline = match obj.map.get("Multiline") {
            None | Some(Value::Null) => None,
            Some(v) => {
                obj.taken.push("Multiline");
                self.multiline(&join(at, "Multiline"), v)
            }
        };
        obj.taken.extend([
            "EnableContainerDiscovery",
            "AppendingLogPositionMeta",
            "AllowingIncludedByMultiConfigs",
            "Tags",
            "FileOffsetKey",
        ]);
        if obj.map.get("EnableContainerDiscovery").is_some_and(|v| v == &Value::Bool(true)) {
            self.warn(
                &join(at, "EnableContainerDiscovery"),
                "container discovery is not supported; host paths are collected",
            );
        }
        self.unknown_keys(&obj, "input_file");
        Some(FileInput {
            file_paths,
            max_dir_search_depth,
            exclude_file_paths,
            exclude_files,
            exclude_dirs,
            encoding,
            tail_size_kb,
            multiline,
            flush_timeout_secs,
        })
    }

    fn multiline(&mut self, at: &str, value: &Value) -> Option<Multiline> {
        let mut obj = self.object(at, value)?;
        let mode = self.string(&mut obj, "Mode").unwrap_or_else(|| "custom".into());
        if !mode.eq_ignore_ascii_case("custom") {
            self.error(&join(at, "Mode"), format!("unsupported mode {mode:?} (custom)"));
        }
        let start = self.regex(&mut obj, "StartPattern");
        let continue_ = self.regex(&mut obj, "ContinuePattern");
        let end = self.regex(&mut obj, "EndPattern");
        let discard_unmatched = match self.string(&mut obj, "UnmatchedContentTreatment").as_deref() {
            None | Some("single_line") => false,
            Some("discard") => true,
            Some(other) => {
                self.error(
                    &join(at, "UnmatchedContentTreatment"),
                    format!("unknown treatment {other:?} (single_line, discard)"),
                );
                false
            }
        };
        self.unknown_keys(&obj, "Multiline");
        if start.is_none() && continue_.is_none() && end.is_none() {
            return None;
        }
        Some(Multiline { start, continue_, end, discard_unmatched })
    }

    fn source_policy(&mut self, obj: &mut Obj<'_>) -> Option<SourcePolicy> {
        let source_key = self.required_string(obj, "SourceKey")?;
        let keep_on_fail = self.bool(obj, "KeepingSourceWhenParseFail", false);
        let keep_on_success = self.bool(obj, "KeepingSourceWhenParseSucceed", false);
        let renamed_source_key = self.string(obj, "RenamedSourceKey").filter(|k| !k.is_empty());
        obj.taken.push("CopingRawLog");
        Some(SourcePolicy { source_key, keep_on_fail, keep_on_success, renamed_source_key })
    }

    fn processor(&mut self, at: &str, value: &Value) -> Option<Processor> {
        let mut obj = self.object(at, value)?;
        let kind = self.required_string(&mut obj, "Type")?;
        let processor = match kind.as_str() {
            "processor_parse_regex_native" => {
                let source = self.source_policy(&mut obj);
                let preset = self.string(&mut obj, "Preset");
                let (regex, keys) = match preset.as_deref() {
                    Some(name) => match access_log_preset(name) {
                        Some((pattern, keys)) => {
                            (self.compile(&join(at, "Preset"), pattern), keys.iter().map(|k| (*k).to_owned()).collect())
                        }
                        None => {
                            self.error(&join(at, "Preset"), format!("unknown preset {name:?} (nginx, apache)"));
                            (None, Vec::new())
                        }
                    },
                    None => {
                        let pattern = self.required_string(&mut obj, "Regex");
                        let keys = self.strings(&mut obj, "Keys");
                        if keys.is_empty() {
                            self.error(&join(at, "Keys"), "required: the names of the regex's groups");
                        }
                        (pattern.and_then(|p| self.compile(&join(at, "Regex"), &p)), keys)
                    }
                };
                if let Some(re) = &regex
                    && re.captures_len() - 1 != keys.len()
                {
                    self.error(
                        &join(at, "Keys"),
                        format!("{} keys for a regex with {} groups", keys.len(), re.captures_len() - 1),
                    );
                }
                Processor::Regex { source: source?, regex: regex?, keys }
            }
            "processor_parse_json_native" => Processor::Json { source: self.source_policy(&mut obj)? },
            "processor_parse_delimiter_native" => {
                let source = self.source_policy(&mut obj);
                let separator = self.required_string(&mut obj, "Separator");
                let quote = match self.string(&mut obj, "Quote") {
                    None => Some('"'),
                    Some(q) if q.is_empty() => None,
                    Some(q) if q.chars().count() == 1 => q.chars().next(),
                    Some(q) => {
                        self.error(&join(at, "Quote"), format!("{q:?} is not one character"));
                        None
                    }
                };
                let keys = self.strings(&mut obj, "Keys");
                if keys.is_empty() {
                    self.error(&join(at, "Keys"), "required: the names of the columns");
                }
                let allow_short = self.bool(&mut obj, "AllowingShortenedFields", true);
                let overflow = match self.string(&mut obj, "OverflowedFieldsTreatment").as_deref() {
                    None | Some("extend") => Overflow::Extend,
                    Some("keep") => Overflow::Keep,
                    Some("discard") => Overflow::Discard,
                    Some(other) => {
                        self.error(
                            &join(at, "OverflowedFieldsTreatment"),
                            format!("unknown treatment {other:?} (extend, keep, discard)"),
                        );
                        Overflow::Extend
                    }
                };
                Processor::Delimiter { source: source?, separator: separator?, quote, keys, allow_short, overflow }
            }
            "processor_parse_timestamp_native" => {
                let source_key = self.required_string(&mut obj, "SourceKey");
                let format = self.required_string(&mut obj, "SourceFormat");
                let offset_secs = match self.string(&mut obj, "SourceTimezone").filter(|t| !t.is_empty()) {
                    None => None,
                    Some(tz) => match parse_gmt_offset(&tz) {
                        Some(secs) => Some(secs),
                        None => {
                            self.error(&join(at, "SourceTimezone"), format!("{tz:?} is not GMT+HH:MM or GMT-HH:MM"));
                            None
                        }
                    },
                };
                obj.taken.push("SourceYear");
                let year = match obj.map.get("SourceYear") {
                    None => None,
                    Some(Value::Number(n)) if n.as_i64() == Some(-1) => None,
                    Some(Value::Number(n)) if n.as_i64().is_some_and(|y| (1970..=9999).contains(&y)) => {
                        n.as_i64().map(|y| y as i32)
                    }
                    Some(other) => {
                        self.error(&join(at, "SourceYear"), format!("expected a year, found {other}"));
                        None
                    }
                };
                Processor::Timestamp { source_key: source_key?, format: format?, offset_secs, year }
            }
            other => {
                self.error(
                    &join(at, "Type"),
                    format!(
                        "unknown processor type {other:?} (processor_parse_regex_native, processor_parse_json_native, \
                         processor_parse_delimiter_native, processor_parse_timestamp_native)"
                    ),
                );
                return None;
            }
        };
        self.unknown_keys(&obj, &kind);
        Some(processor)
    }

    fn flusher(&mut self, at: &str, value: &Value, env: &dyn Fn(&str) -> Option<String>) -> Option<SlsFlusher> {
        let mut obj = self.object(at, value)?;
        let kind = self.required_string(&mut obj, "Type")?;
        if kind != "flusher_sls" {
            self.error(
                &join(at, "Type"),
                format!("unknown flusher type {kind:?}: sluice-agent sends to SLS PutLogs (flusher_sls)"),
            );
            return None;
        }
        let project = self.required_string(&mut obj, "Project");
        let logstore = self.required_string(&mut obj, "Logstore");
        let endpoint = self.required_string(&mut obj, "Endpoint");
        let region = self.string(&mut obj, "Region").filter(|r| !r.is_empty());
        let telemetry = self.string(&mut obj, "TelemetryType");
        if let Some(t) = telemetry.filter(|t| t != "logs") {
            self.error(&join(at, "TelemetryType"), format!("unsupported telemetry type {t:?} (logs)"));
        }
        let key_id = self.string(&mut obj, "AccessKeyId").or_else(|| env(ACCESS_KEY_ID_ENV));
        let key_secret = self.string(&mut obj, "AccessKeySecret").or_else(|| env(ACCESS_KEY_SECRET_ENV));
        let (Some(access_key_id), Some(access_key_secret)) = (key_id, key_secret) else {
            self.error(
                at,
                format!("no credentials: set AccessKeyId and AccessKeySecret, or {ACCESS_KEY_ID_ENV} and {ACCESS_KEY_SECRET_ENV}"),
            );
            return None;
        };
        let shard_hash_keys = self.strings(&mut obj, "ShardHashKeys");
        let compression = match self.string(&mut obj, "CompressType").as_deref().map(str::to_ascii_lowercase).as_deref()
        {
            None | Some("lz4") => Compression::Lz4,
            Some("zstd") => Compression::Zstd,
            Some(other) => {
                self.error(&join(at, "CompressType"), format!("unknown compression {other:?} (lz4, zstd)"));
                Compression::Lz4
            }
        };
        let mut batch = BatchLimits::default();
        if let Some(v) = obj.map.get("Batch") {
            obj.taken.push("Batch");
            if let Some(mut b) = self.object(&join(at, "Batch"), v) {
                batch.min_bytes = self.uint(&mut b, "MinSizeBytes", batch.min_bytes as u64, 5 << 20) as usize;
                batch.min_count = self.uint(&mut b, "MinCnt", batch.min_count as u64, 40_960) as usize;
                batch.timeout_secs = self.uint(&mut b, "TimeoutSecs", batch.timeout_secs, 3600);
                self.unknown_keys(&b, "Batch");
            }
        }
        obj.taken.extend(["Match", "EnableShardHash", "Aliuid", "MaxSendRate"]);
        self.unknown_keys(&obj, "flusher_sls");
        Some(SlsFlusher {
            project: project?,
            logstore: logstore?,
            endpoint: endpoint?,
            region,
            access_key_id,
            access_key_secret,
            shard_hash_keys,
            compression,
            batch,
        })
    }
}

/// The access-log presets: the combined formats of nginx and apache, with the field
/// names SLS's NGINX and Apache modes give them.
pub fn access_log_preset(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    match name {
        "nginx" => Some((
            r#"(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) ([^"]+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)".*"#,
            &[
                "remote_addr",
                "remote_user",
                "time_local",
                "request_method",
                "request_uri",
                "request_protocol",
                "status",
                "body_bytes_sent",
                "http_referer",
                "http_user_agent",
            ],
        )),
        "apache" => Some((
            r#"(\S+) (\S+) (\S+) \[([^\]]+)\] "(\S+) (\S+) ([^"]+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)".*"#,
            &[
                "remote_addr",
                "remote_ident",
                "remote_user",
                "time_local",
                "request_method",
                "request_uri",
                "request_protocol",
                "status",
                "response_size_bytes",
                "referer",
                "user_agent",
            ],
        )),
        _ => None,
    }
}

/// `GMT+08:00` → 28800.
pub fn parse_gmt_offset(tz: &str) -> Option<i32> {
    let rest = tz.strip_prefix("GMT").or_else(|| tz.strip_prefix("UTC"))?;
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, hm) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (h, m) = hm.split_once(':').unwrap_or((hm, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 3600 + m * 60))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == ACCESS_KEY_ID_ENV || name == ACCESS_KEY_SECRET_ENV).then(|| "from-env".to_owned())
    }

    fn load_yaml(text: &str) -> (Option<Pipeline>, Vec<Issue>) {
        load(Path::new("/etc/sluice-agent/conf/access.yaml"), text, &env)
    }

    const ACCESS: &str = r#"
enable: true
inputs:
  - Type: input_file
    FilePaths:
      - /var/log/nginx/**/access*.log
    MaxDirSearchDepth: 3
    ExcludeFiles: ["*.gz"]
processors:
  - Type: processor_parse_regex_native
    SourceKey: content
    Regex: ([\d\.]+) \S+ \S+ \[(\S+) \S+\] \"(\w+) ([^\\"]*)\" ([\d\.]+) (\d+) (\d+) (\d+|-) \"([^\\"]*)\" \"([^\\"]*)\"
    Keys: [ip, time, method, url, request_time, request_length, status, length, ref_url, browser]
  - Type: processor_parse_timestamp_native
    SourceKey: time
    SourceFormat: '%d/%b/%Y:%H:%M:%S'
    SourceTimezone: GMT+08:00
flushers:
  - Type: flusher_sls
    Project: web
    Logstore: access
    Region: cn-hangzhou
    Endpoint: cn-hangzhou.log.aliyuncs.com
    TelemetryType: logs
"#;

    #[test]
    fn reads_a_loongcollector_access_log_pipeline_as_is() {
        let (pipeline, issues) = load_yaml(ACCESS);
        assert_eq!(issues, vec![]);
        let p = pipeline.unwrap();
        assert_eq!(p.name, "access");
        assert_eq!(p.input.file_paths, vec!["/var/log/nginx/**/access*.log"]);
        assert_eq!(p.input.max_dir_search_depth, 3);
        assert_eq!(p.input.tail_size_kb, 1024);
        assert_eq!(p.processors.len(), 2);
        let Processor::Regex { keys, regex, .. } = &p.processors[0] else { panic!() };
        assert_eq!(keys.len(), 10);
        assert!(regex.is_match(
            r#"127.0.0.1 - - [07/Jul/2022:10:43:30 +0800] "POST /PutData?Category=YunOsAccountOpLog" 0.024 18204 200 37 "-" "aliyun-sdk-java""#
        ));
        let Processor::Timestamp { offset_secs, .. } = &p.processors[1] else { panic!() };
        assert_eq!(*offset_secs, Some(8 * 3600));
        assert_eq!(p.flusher.access_key_id, "from-env");
        assert_eq!(p.flusher.region.as_deref(), Some("cn-hangzhou"));
    }

    #[test]
    fn json_configs_read_the_same() {
        let json = r#"{"inputs":[{"Type":"input_file","FilePaths":["/a/*.log"]}],
            "flushers":[{"Type":"flusher_sls","Project":"p","Logstore":"l","Endpoint":"http://127.0.0.1:1",
            "AccessKeyId":"id","AccessKeySecret":"s"}]}"#;
        let (p, issues) = load(Path::new("/c/app.json"), json, &|_| None);
        assert_eq!(issues, vec![]);
        assert_eq!(p.unwrap().flusher.access_key_id, "id");
    }

    #[test]
    fn mistakes_name_the_file_and_the_key() {
        let text = ACCESS
            .replace("MaxDirSearchDepth: 3", "MaxDirSearchDepth: 3\n    FilePath: /typo.log")
            .replace("SourceTimezone: GMT+08:00", "SourceTimezone: Asia/Shanghai")
            .replace("Keys: [ip,", "Keys: [extra, ip,");
        let (p, issues) = load_yaml(&text);
        assert!(p.is_none());
        let rendered: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "/etc/sluice-agent/conf/access.yaml: warning: inputs[0].FilePath: unknown key for input_file, ignored",
                "/etc/sluice-agent/conf/access.yaml: error: processors[0].Keys: 11 keys for a regex with 10 groups",
                "/etc/sluice-agent/conf/access.yaml: error: processors[1].SourceTimezone: \"Asia/Shanghai\" is not GMT+HH:MM or GMT-HH:MM",
            ]
        );
    }

    #[test]
    fn unknown_plugin_types_and_bad_yaml_are_errors() {
        let (p, issues) = load_yaml(&ACCESS.replace("processor_parse_timestamp_native", "processor_bogus"));
        assert!(p.is_none());
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "processors[1].Type");
        assert!(issues[0].message.contains("unknown processor type \"processor_bogus\""));

        let (p, issues) = load_yaml("inputs: [\n");
        assert!(p.is_none());
        assert!(issues[0].message.starts_with("not valid YAML"), "{issues:?}");
    }

    #[test]
    fn disabled_pipelines_do_not_run() {
        let (p, issues) = load_yaml(&ACCESS.replace("enable: true", "enable: false"));
        assert!(p.is_none());
        assert!(issues.is_empty());
    }

    #[test]
    fn missing_credentials_are_an_error_on_the_flusher() {
        let (p, issues) = load(Path::new("/c/a.yaml"), ACCESS, &|_| None);
        assert!(p.is_none());
        assert_eq!(issues[0].key, "flushers[0]");
        assert!(issues[0].message.contains(ACCESS_KEY_ID_ENV));
    }

    #[test]
    fn gmt_offsets() {
        assert_eq!(parse_gmt_offset("GMT+08:00"), Some(28_800));
        assert_eq!(parse_gmt_offset("GMT-03:30"), Some(-12_600));
        assert_eq!(parse_gmt_offset("GMT"), Some(0));
        assert_eq!(parse_gmt_offset("+08:00"), None);
    }

    #[test]
    fn presets_match_combined_access_logs() {
        let (nginx, keys) = access_log_preset("nginx").unwrap();
        let re = Regex::new(&format!("^(?:{nginx})$")).unwrap();
        let line = r#"10.0.0.7 - alice [10/Oct/2025:13:55:36 +0000] "GET /api/items?id=7 HTTP/1.1" 200 2326 "https://example.com/" "curl/8.5.0""#;
        let caps = re.captures(line).unwrap();
        assert_eq!(caps.len() - 1, keys.len());
        assert_eq!(&caps[5], "/api/items?id=7");
        assert_eq!(&caps[7], "200");
        let (apache, keys) = access_log_preset("apache").unwrap();
        let re = Regex::new(&format!("^(?:{apache})$")).unwrap();
        let caps = re.captures(line).unwrap();
        assert_eq!(caps.len() - 1, keys.len());
    }

    /// README's example pipeline loads as it is written there.
    #[test]
    fn readmes_example_loads() {
        let readme = include_str!("../../README.md");
        let start = readme.find("# /etc/sluice-agent/conf.d/access.yaml").expect("README has the example");
        let block = &readme[start..];
        let block = &block[..block.find("```").expect("the block ends")];
        let (p, issues) = load(Path::new("/etc/sluice-agent/conf.d/access.yaml"), block, &env);
        assert_eq!(issues, vec![]);
        let p = p.unwrap();
        assert_eq!((p.flusher.project.as_str(), p.flusher.logstore.as_str()), ("web", "access"));
        let Processor::Regex { regex, .. } = &p.processors[0] else { panic!() };
        assert!(regex.is_match(r#"10.0.0.7 - - [10/Oct/2025:13:55:36 +0000] "GET /a HTTP/1.1" 200 12 "-" "curl/8""#));
    }
}
