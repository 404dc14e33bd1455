//! Pattern files: the user-editable rules that turn a message into an event.
//!
//! A pattern file (TOML, see `patterns/README.md`) names its component and the
//! keywords its messages always contain, then lists patterns: an event type, a
//! regex whose named captures fill columns or `metadata.<key>`, constant
//! fields, conversions, and optional logger/level filters. `ignore = true`
//! marks known noise (the dialect's near misses) that carries a keyword.
//!
//! The keywords are the prefilter: one Aho-Corasick scan over a line's raw
//! bytes decides whether any regex runs at all, so the common noise line costs
//! no regex. That is only sound if every event pattern's regex requires one of
//! the keywords, so loading checks it with the regex's literal prefixes and
//! suffixes and refuses a pattern it cannot prove.
//!
//! Loading, the checks that name a file and a pattern in every error,
//! compilation into one `RegexSet`, and matching belong to one language.

use aho_corasick::AhoCorasick;
use regex::Regex;
use regex_automata::meta;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::{EventFields, Field, Val, Value, ValueKind};
use crate::parse::fields::Conversion;
use crate::parse::walk::{Found, Program, Slots};

/// The default pattern files, compiled into the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "circuit_breaker.toml",
        include_str!("../../patterns/circuit_breaker.toml"),
    ),
    (
        "portfolio_limits.toml",
        include_str!("../../patterns/portfolio_limits.toml"),
    ),
    (
        "trailing_stop.toml",
        include_str!("../../patterns/trailing_stop.toml"),
    ),
];

/// A pattern file that cannot be used. Always names the file, and the pattern
/// when one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// The directory or file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{file}: {message}")]
    Toml {
        /// The file.
        file: String,
        /// toml's message (it names the key and line).
        message: String,
    },
    /// A pattern is wrong.
    #[error("{file}: pattern {pattern:?}: {message}")]
    Pattern {
        /// The file.
        file: String,
        /// The pattern's name.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// The file as a whole is wrong.
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    component: Option<String>,
    keywords: Vec<String>,
    #[serde(default, rename = "pattern")]
    patterns: Vec<PatternDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternDef {
    name: String,
    event_type: Option<String>,
    component: Option<String>,
    regex: String,
    #[serde(default)]
    set: BTreeMap<String, toml::Value>,
    #[serde(default)]
    types: BTreeMap<String, Conversion>,
    logger: Option<String>,
    levels: Option<Vec<String>>,
    #[serde(default)]
    ignore: bool,
}

/// Where a captured or constant value goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A column.
    Column(Field),
    /// A key of `metadata` (shared with every event that gets it).
    Metadata(Arc<str>),
}

impl Target {
    fn parse(name: &str) -> Result<Target, String> {
        if let Some(key) = name.strip_prefix("metadata.") {
            if key.is_empty() {
                return Err("\"metadata.\" needs a key after the dot".into());
            }
            return Ok(Target::Metadata(key.into()));
        }
        Field::from_name(name).map(Target::Column).ok_or_else(|| {
            let cols: Vec<_> = Field::ALL.iter().map(|f| f.name()).collect();
            format!(
                "{name:?} is neither a column a pattern may fill ({}) nor metadata.<key>",
                cols.join(", ")
            )
        })
    }

    fn default_conversion(&self) -> Conversion {
        match self {
            Target::Column(f) => match f.kind() {
                ValueKind::Str => Conversion::String,
                ValueKind::Int => Conversion::Int,
                ValueKind::Float => Conversion::Number,
                ValueKind::Bool => Conversion::Bool,
            },
            Target::Metadata(_) => Conversion::String,
        }
    }

    /// Puts a value where it belongs (a metadata key borrowed from the
    /// pattern).
    pub fn apply<'a>(&'a self, fields: &mut EventFields<'a>, v: Val<'a>) -> Result<(), String> {
        match self {
            Target::Column(f) => fields.set(*f, v).map_err(|e| e.to_string()),
            Target::Metadata(k) => {
                fields.insert_metadata(std::borrow::Cow::Borrowed(&**k), v);
                Ok(())
            }
        }
    }
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Its name (unique within its file).
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// `None` for an ignore pattern.
    pub event_type: Option<Arc<str>>,
    /// The component of its events.
    pub component: Arc<str>,
    /// The regex, run for its captures without a DFA scan first (see
    /// [`matcher`]); for an event pattern, without its leading literal.
    regex: meta::Regex,
    /// The same regex (without its lead) walked directly, when it has only
    /// the shapes [`Program`] walks: it answers first, and `regex` only
    /// when it gives up.
    program: Option<Program>,
    /// Bytes of the leading literal the capturing regex leaves out: the
    /// message must start with them, and the regex runs from there on.
    lead: usize,
    /// The regex as written, for tests that compare engines.
    #[cfg(test)]
    regex_text: String,
    /// Text every message this pattern matches starts with (its regex is
    /// anchored and begins with literals): a memcmp rules the pattern out
    /// before any regex runs.
    prefix: Option<String>,
    /// The regex is `^` and its prefix, nothing more: a message that starts
    /// with the prefix matches, and no regex needs to run (an ignore
    /// pattern such as `^Trailing stop configuration loaded:`).
    exact: bool,
    /// (capture group index, target, conversion).
    captures: Vec<(usize, Target, Conversion)>,
    constants: Vec<(Target, Value)>,
    logger: Option<Regex>,
    levels: Option<Vec<String>>,
}

/// A pattern matched but a field did not convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractError(pub String);

impl Pattern {
    fn accepts(&self, level: Option<&str>, logger: Option<&str>) -> bool {
        let level_ok = match &self.levels {
            Some(levels) => level.is_some_and(|l| levels.iter().any(|x| x == l)),
            None => true,
        };
        let logger_ok = match &self.logger {
            Some(re) => logger.is_some_and(|l| re.is_match(l)),
            None => true,
        };
        level_ok && logger_ok
    }

    /// Whether the message can match (its prefix, if the pattern has one).
    fn may_match(&self, message: &str) -> bool {
        self.prefix
            .as_deref()
            .is_none_or(|p| message.starts_with(p))
    }

    /// The captures of `message`, which starts with [`Pattern::prefix`] if
    /// the pattern has one, if the pattern matches it: the search starts
    /// after the lead (see [`matcher`]).
    fn captures<'m>(&self, message: &'m str) -> Option<Caps<'m>> {
        if let Some(program) = &self.program {
            match program.captures(message, self.lead) {
                Found::Match(slots) => {
                    return Some(Caps {
                        message,
                        groups: Groups::Slots(slots),
                        lead: self.lead,
                    });
                }
                Found::NoMatch => return None,
                Found::GaveUp => {}
            }
        }
        let mut caps = self.regex.create_captures();
        self.regex.search_captures(&self.input(message), &mut caps);
        caps.is_match().then_some(Caps {
            message,
            groups: Groups::Regex(caps),
            lead: self.lead,
        })
    }

    /// Whether the pattern matches `message`, which starts with
    /// [`Pattern::prefix`] if the pattern has one (an ignore pattern's
    /// question): its program answers first (see [`matcher`]).
    fn is_match(&self, message: &str) -> bool {
        if let Some(program) = &self.program {
            match program.captures(message, self.lead) {
                Found::Match(_) => return true,
                Found::NoMatch => return false,
                Found::GaveUp => {}
            }
        }
        self.regex.is_match(self.input(message))
    }

    /// What the regex searches in `message`: from the end of the lead,
    /// held there if there is one (the regex was anchored before the lead
    /// was taken off); a pattern without a lead keeps its own anchors, and
    /// one that has none is searched for anywhere.
    fn input<'m>(&self, message: &'m str) -> Input<'m> {
        let anchored = if self.lead > 0 {
            Anchored::Yes
        } else {
            Anchored::No
        };
        Input::new(message).range(self.lead..).anchored(anchored)
    }

    /// Fills `fields` from the captures of a message this pattern matched.
    pub fn extract<'a>(
        &'a self,
        caps: &Caps<'a>,
        fields: &mut EventFields<'a>,
    ) -> Result<(), ExtractError> {
        for (t, v) in &self.constants {
            t.apply(fields, Val::from(v)).map_err(ExtractError)?;
        }
        for (i, target, conv) in &self.captures {
            let Some(m) = caps.get(*i) else { continue };
            let v = conv.apply(m).map_err(|e| {
                ExtractError(format!(
                    "pattern {:?} ({}): {}: {e}",
                    self.name,
                    self.file,
                    target_name(target)
                ))
            })?;
            target.apply(fields, v).map_err(|e| {
                ExtractError(format!("pattern {:?} ({}): {e}", self.name, self.file))
            })?;
        }
        Ok(())
    }
}

fn target_name(t: &Target) -> String {
    match t {
        Target::Column(f) => f.name().to_owned(),
        Target::Metadata(k) => format!("metadata.{k}"),
    }
}

/// A message's captures by the pattern it matched.
#[derive(Debug)]
pub struct Caps<'m> {
    message: &'m str,
    groups: Groups,
    /// The lead the search started after (see [`matcher`]).
    lead: usize,
}

impl<'m> Caps<'m> {
    /// The text of capture group `i`, if it took part in the match. Group 0,
    /// the whole match, includes the lead the search started after (a
    /// pattern with a lead is anchored at the message's start).
    pub fn get(&self, i: usize) -> Option<&'m str> {
        let (start, end) = match &self.groups {
            Groups::Regex(caps) => {
                let span = caps.get_group(i)?;
                (span.start, span.end)
            }
            Groups::Slots(slots) => slots.get(i)?,
        };
        let start = if i == 0 {
            start.saturating_sub(self.lead)
        } else {
            start
        };
        self.message.get(start..end)
    }
}

/// The groups of a match, as the engine that found it gives them.
#[derive(Debug)]
enum Groups {
    /// The `regex` crate's.
    Regex(Captures),
    /// [`Program`]'s.
    Slots(Slots),
}

/// `regex` (already checked by `regex::Regex::new`, whose errors read
/// better) as the regex engine that runs it, and the leading literal that
/// engine leaves out. The `regex` crate's own first scans each message with a
/// lazy DFA for the match's end, then runs a capturing engine over it. A
/// pattern anchored at the start (every default one) is tried only on
/// messages that start with its literal prefix, so that scan almost always
/// finds a match the capturing engine then walks again: such a pattern goes
/// straight to the one-pass DFA or the bounded backtracker (exact engines
/// both: the same answers). A dense backfill on one core takes 0.92x the
/// time (docs/PERFORMANCE.md). Its leading literal (`Trailing stop UPDATED:
/// peak=`, half the message) is left out of the capturing regex too: the
/// caller checks it with one memcmp and starts the anchored search after
/// it, in the same haystack, so look-arounds still see the text before
/// (0.928x the time of a dense backfill on one core). The regex without
/// its lead is also compiled as a [`Program`] when it has only the shapes
/// that module walks (every default pattern does): it answers first, and
/// the crate's engine only when it gives up. A pattern that is
/// not anchored keeps the DFA: without it the capturing
/// engines would try each start in turn. So does an ignore pattern
/// (`capturing` false), which is only asked whether it matches: the lazy DFA
/// answers that on its own, and stops as soon as it knows. An anchored
/// ignore pattern (`^Decision [A-Z_]+ for \S+: Trailing stop triggered`,
/// a quarter of the keyword lines of a mixed log) is walked first too, from
/// the message's start, its lead kept: a walk that finds a match there
/// answers as the DFA would.
fn matcher(regex: &str, capturing: bool) -> Result<(meta::Regex, String, Option<Program>), String> {
    let hir = regex_syntax::Parser::new()
        .parse(regex)
        .map_err(|e| e.to_string())?;
    let anchored = hir
        .properties()
        .look_set_prefix()
        .contains(regex_syntax::hir::Look::Start);
    if !(anchored && capturing) {
        let regex = meta::Regex::new(regex).map_err(|e| e.to_string())?;
        let program = anchored.then(|| Program::new(&hir)).flatten();
        return Ok((regex, String::new(), program));
    }
    let (rest, lead) = without_lead(&hir);
    let config = meta::Config::new().hybrid(false).dfa(false);
    let regex = meta::Builder::new()
        .configure(config)
        .build_from_hir(&rest)
        .map_err(|e| e.to_string())?;
    let program = Program::new(&rest);
    Ok((regex, lead, program))
}

/// `hir` (anchored at the start) without its `^` and the literal right
/// after it, and that literal; `hir` itself (and no text) when it starts
/// otherwise. Every match of `hir` is the literal followed by a match
/// of the rest, whose capture groups are `hir`'s, numbered the same.
fn without_lead(hir: &regex_syntax::hir::Hir) -> (regex_syntax::hir::Hir, String) {
    use regex_syntax::hir::{Hir, HirKind, Look};
    if let HirKind::Concat(parts) = hir.kind()
        && let [start, lead, rest @ ..] = parts.as_slice()
        && matches!(start.kind(), HirKind::Look(Look::Start))
        && let HirKind::Literal(lit) = lead.kind()
        && let Ok(text) = std::str::from_utf8(&lit.0)
    {
        return (Hir::concat(rest.to_vec()), text.to_owned());
    }
    (hir.clone(), String::new())
}

/// What a message matched.
#[derive(Debug)]
pub enum Matched<'p, 'm> {
    /// An event pattern, with the message's captures.
    Event(&'p Pattern, Caps<'m>),
    /// Known noise.
    Ignored(&'p Pattern),
    /// No pattern.
    Nothing,
}

/// The loaded pattern set with its prefilter.
#[derive(Debug, Clone)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
    keywords: Vec<String>,
    prefilter: AhoCorasick,
    /// The files loaded, in order, for `risktail parse`'s summary and logs.
    pub files: Vec<String>,
}

impl PatternSet {
    /// Loads the built-in files (when `builtin`) and every `*.toml` of `dirs`.
    /// A file in a dir with the name of a built-in file replaces it; patterns
    /// are tried in file-name order, then in their order within the file.
    pub fn load(builtin: bool, dirs: &[PathBuf]) -> Result<PatternSet, PatternError> {
        let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
        if builtin {
            for (name, text) in BUILTIN {
                files.insert(
                    (*name).to_owned(),
                    (format!("<built-in>/{name}"), (*text).to_owned()),
                );
            }
        }
        for dir in dirs {
            for path in toml_files(dir)? {
                let text = std::fs::read_to_string(&path).map_err(|source| PatternError::Io {
                    path: path.clone(),
                    source,
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.insert(name, (path.display().to_string(), text));
            }
        }
        PatternSet::from_sources(files.into_values())
    }

    /// Compiles (display name, TOML text) pairs, in order.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<PatternSet, PatternError> {
        let mut patterns = Vec::new();
        let mut keywords: Vec<String> = Vec::new();
        let mut files = Vec::new();
        for (file, text) in sources {
            let def: FileDef = toml::from_str(&text).map_err(|e| PatternError::Toml {
                file: file.clone(),
                message: e.to_string().trim_end().to_owned(),
            })?;
            if def.keywords.is_empty() || def.keywords.iter().any(String::is_empty) {
                return Err(PatternError::File {
                    file,
                    message: "keywords must list at least one non-empty string: they decide which lines are tried".into(),
                });
            }
            if let Some(k) = def.keywords.iter().find(|k| k.contains(['\n', '\r'])) {
                return Err(PatternError::File {
                    file,
                    message: format!(
                        "keyword {k:?} holds a line break: a line never does, so it could never be found"
                    ),
                });
            }
            let mut names = std::collections::HashSet::new();
            for p in def.patterns {
                if !names.insert(p.name.clone()) {
                    return Err(PatternError::Pattern {
                        file,
                        pattern: p.name,
                        message: "a pattern of this name is already in the file".into(),
                    });
                }
                patterns.push(compile(&file, def.component.as_deref(), &def.keywords, p)?);
            }
            for k in def.keywords {
                if !keywords.contains(&k) {
                    keywords.push(k);
                }
            }
            files.push(file);
        }
        // Leftmost-first lets aho-corasick use its packed SIMD searcher
        // (Teddy) over whole buffers; the standard match kind would fall back
        // to a rare-byte prefilter that the engine's text keeps tripping.
        let prefilter = AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(&keywords)
            .map_err(|e| PatternError::File {
                file: "keywords".into(),
                message: e.to_string(),
            })?;
        Ok(PatternSet {
            patterns,
            keywords,
            prefilter,
            files,
        })
    }

    /// Whether the raw bytes contain any keyword: the only lines worth parsing.
    #[inline]
    pub fn is_candidate(&self, raw: &[u8]) -> bool {
        self.prefilter.is_match(raw)
    }

    /// Where the first keyword starts in `hay` (any number of lines).
    pub fn find_candidate(&self, hay: &[u8]) -> Option<usize> {
        self.prefilter.find(hay).map(|m| m.start())
    }

    /// The first keyword a message contains (unmatched ones are quarantined).
    pub fn keyword_in(&self, message: &str) -> Option<&str> {
        self.prefilter
            .find(message)
            .map(|m| self.keywords[m.pattern().as_usize()].as_str())
    }

    /// The keywords, in load order.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Each pattern's regex as written, in order.
    #[cfg(test)]
    pub(crate) fn regexes(&self) -> Vec<String> {
        self.patterns.iter().map(|p| p.regex_text.clone()).collect()
    }

    /// The first pattern, in order, that accepts the level and logger and
    /// matches the message. One regex pass for the pattern that matches (its
    /// captures come with it); patterns whose literal prefix the message does
    /// not start with cost a memcmp.
    pub fn find<'m>(
        &self,
        message: &'m str,
        level: Option<&str>,
        logger: Option<&str>,
    ) -> Matched<'_, 'm> {
        for p in &self.patterns {
            if !p.may_match(message) || !p.accepts(level, logger) {
                continue;
            }
            match p.event_type {
                Some(_) => {
                    if let Some(caps) = p.captures(message) {
                        return Matched::Event(p, caps);
                    }
                }
                None => {
                    if p.exact || p.is_match(message) {
                        return Matched::Ignored(p);
                    }
                }
            }
        }
        Matched::Nothing
    }
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, PatternError> {
    let rd = std::fs::read_dir(dir).map_err(|source| PatternError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| PatternError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn compile(
    file: &str,
    file_component: Option<&str>,
    keywords: &[String],
    p: PatternDef,
) -> Result<Pattern, PatternError> {
    let err = |message: String| PatternError::Pattern {
        file: file.to_owned(),
        pattern: p.name.clone(),
        message,
    };
    let regex = Regex::new(&p.regex).map_err(|e| err(format!("regex: {e}")))?;
    let component = p
        .component
        .clone()
        .or(file_component.map(str::to_owned))
        .ok_or_else(|| {
            err("no component: set it at the top of the file or in the pattern".into())
        })?;
    if p.ignore && (p.event_type.is_some() || !p.set.is_empty()) {
        return Err(err(
            "an ignore pattern makes no event: drop event_type and set".into(),
        ));
    }
    if !p.ignore {
        if p.event_type.as_deref().is_none_or(str::is_empty) {
            return Err(err(
                "event_type is missing (or set ignore = true for known noise)".into(),
            ));
        }
        if !requires_keyword(&p.regex, keywords) {
            return Err(err(format!(
                "the regex can match a message that contains none of the file's keywords {keywords:?}; \
                 lines without a keyword are never tried, so such a pattern would silently miss. \
                 Start the regex with the keyword text (or add a keyword it always contains)"
            )));
        }
    }
    let captures = captures_of(&regex, &p).map_err(err)?;
    let (regex, lead, program) =
        matcher(&p.regex, !p.ignore).map_err(|e| err(format!("regex: {e}")))?;
    let (prefix, exact) = match anchored_prefix(&p.regex) {
        Some((prefix, exact)) => (Some(prefix), exact),
        None => (None, false),
    };
    // The prefix rules out what does not start with the lead (which every
    // match starts with), so the search may begin after it.
    let prefix = match prefix {
        Some(p) if p.len() >= lead.len() => Some(p),
        _ if !lead.is_empty() => Some(lead.clone()),
        other => other,
    };
    let constants = constants_of(&p).map_err(err)?;
    let logger = p
        .logger
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| err(format!("logger: {e}")))?;
    Ok(Pattern {
        name: p.name,
        file: file.to_owned(),
        event_type: p.event_type.map(Arc::from),
        component: Arc::from(component),
        prefix,
        exact,
        lead: lead.len(),
        #[cfg(test)]
        regex_text: p.regex.clone(),
        regex,
        program,
        captures,
        constants,
        logger,
        levels: p.levels,
    })
}

/// The regex's named captures: each its column (or metadata key) and
/// conversion; every `types` key must name a capture.
fn captures_of(regex: &Regex, p: &PatternDef) -> Result<Vec<(usize, Target, Conversion)>, String> {
    let mut captures = Vec::new();
    for (i, name) in regex.capture_names().enumerate() {
        let Some(name) = name else { continue };
        let target = Target::parse(name).map_err(|m| format!("capture {m}"))?;
        let conv = p
            .types
            .get(name)
            .copied()
            .unwrap_or_else(|| target.default_conversion());
        captures.push((i, target, conv));
    }
    for key in p.types.keys() {
        if !regex.capture_names().any(|n| n == Some(key)) {
            return Err(format!("types.{key:?} names no capture of the regex"));
        }
    }
    Ok(captures)
}

/// The pattern's `set` constants, each checked against its column's type.
fn constants_of(p: &PatternDef) -> Result<Vec<(Target, Value)>, String> {
    let mut constants = Vec::new();
    for (key, v) in &p.set {
        let target = Target::parse(key).map_err(|m| format!("set: {m}"))?;
        let value = match v {
            toml::Value::String(s) => Value::Str(s.clone()),
            toml::Value::Integer(i) => Value::Int(*i),
            toml::Value::Float(f) => Value::Float(*f),
            toml::Value::Boolean(b) => Value::Bool(*b),
            other => {
                return Err(format!(
                    "set.{key}: {other} is not a string, number or boolean"
                ));
            }
        };
        target
            .apply(&mut EventFields::default(), Val::from(&value))
            .map_err(|m| format!("set.{key}: {m}"))?;
        constants.push((target, value));
    }
    Ok(constants)
}

/// Whether every string the regex matches contains one of the keywords,
/// proved from its literal prefixes or suffixes. `false` means "not proved".
/// The text every match of an anchored regex starts with (the longest
/// common prefix of its prefix literals), if it has any, and whether the
/// regex matches exactly the texts that start with it (one literal, the
/// whole regex, in the text's own case).
fn anchored_prefix(regex: &str) -> Option<(String, bool)> {
    let hir = regex_syntax::Parser::new().parse(regex).ok()?;
    if !hir
        .properties()
        .look_set_prefix()
        .contains(regex_syntax::hir::Look::Start)
    {
        return None;
    }
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let lits = seq.literals()?;
    let first = lits.first()?.as_bytes();
    let mut n = first.len();
    for l in &lits[1..] {
        n = n.min(
            first
                .iter()
                .zip(l.as_bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    // Cut on a character boundary: the prefix is compared as text.
    let text = std::str::from_utf8(&first[..n]).ok().or_else(|| {
        let valid = std::str::from_utf8(&first[..n]).err()?.valid_up_to();
        std::str::from_utf8(&first[..valid]).ok()
    })?;
    let exact = is_start_and_literal(&hir);
    (!text.is_empty()).then(|| (text.to_owned(), exact))
}

/// Whether `hir` is `^` followed by literal text and nothing else (no end
/// anchor, no class, no group): then it matches exactly the texts that
/// start with that text.
fn is_start_and_literal(hir: &regex_syntax::hir::Hir) -> bool {
    use regex_syntax::hir::{HirKind, Look};
    let HirKind::Concat(parts) = hir.kind() else {
        return false;
    };
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    matches!(first.kind(), HirKind::Look(Look::Start))
        && !rest.is_empty()
        && rest.iter().all(|h| matches!(h.kind(), HirKind::Literal(_)))
}

fn requires_keyword(regex: &str, keywords: &[String]) -> bool {
    let Ok(hir) = regex_syntax::Parser::new().parse(regex) else {
        return false;
    };
    [ExtractKind::Prefix, ExtractKind::Suffix]
        .into_iter()
        .any(|kind| {
            let seq = Extractor::new().kind(kind).extract(&hir);
            match seq.literals() {
                Some(lits) if !lits.is_empty() => lits.iter().all(|lit| {
                    keywords
                        .iter()
                        .any(|k| memchr::memmem::find(lit.as_bytes(), k.as_bytes()).is_some())
                }),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<PatternSet, PatternError> {
        PatternSet::from_sources([("t.toml".to_owned(), text.to_owned())])
    }

    #[test]
    fn anchored_prefixes_are_what_every_match_starts_with() {
        let prefix = |r: &str| anchored_prefix(r).map(|(p, _)| p);
        let exact = |r: &str| anchored_prefix(r).is_some_and(|(_, e)| e);
        assert_eq!(
            prefix(r"^Circuit breaker OPENED: (?P<n>\d+) failures").as_deref(),
            Some("Circuit breaker OPENED: ")
        );
        assert_eq!(
            prefix(r"^Entry (REJECTED|allowed) by").as_deref(),
            Some("Entry ")
        );
        assert_eq!(prefix(r"Circuit breaker OPENED"), None, "not anchored");
        assert_eq!(prefix(r"^(?i)circuit"), None, "no common case");
        assert_eq!(prefix(r"^\d+ x"), None);
        // Exact: the regex is its prefix, so starting with it is matching.
        assert!(exact(r"^Trailing stop configuration loaded:"));
        assert!(exact(r"^Risk \(limits\) reloaded\."));
        for not in [
            r"^Trailing stop configuration loaded:$",
            r"^Trailing stop configuration loaded:\s",
            r"^(Trailing stop) configuration",
            r"^Entry (REJECTED|allowed) by",
            r"^(?i)circuit breaker",
            r"Circuit breaker OPENED",
            r"^Circuit breaker OPENED|^Trailing",
        ] {
            assert!(!exact(not), "{not}");
        }
        // Every built-in event pattern gets one (the fast path).
        let set = PatternSet::load(true, &[]).unwrap();
        for p in &set.patterns {
            assert!(p.prefix.is_some(), "{} has no literal prefix", p.name);
        }
    }

    /// Every default pattern but those a prefix decides is walked by a
    /// [`Program`] (the crate's engine only answers when it gives up).
    #[test]
    fn every_default_pattern_is_walked() {
        let set = PatternSet::load(true, &[]).unwrap();
        for p in set.patterns.iter().filter(|p| !p.exact) {
            assert!(p.program.is_some(), "{} is not walked", p.name);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Messages generated from each default pattern's regex (and cut
        /// short, or with a character changed) capture through the
        /// pattern, its lead left out and its program walked, as through
        /// the `regex` crate's own `Regex` on the regex as written.
        #[test]
        fn generated_messages_capture_as_the_regex_crate(
            (pattern, texts) in crate::parse::walk::tests::pattern_and_texts()
        ) {
            let set = PatternSet::load(true, &[]).unwrap();
            let p = set.patterns.iter().find(|p| p.regex_text == pattern).unwrap();
            let plain = Regex::new(&pattern).unwrap();
            for message in texts.iter().filter(|m| p.may_match(m)) {
                proptest::prop_assert_eq!(p.is_match(message), plain.is_match(message), "{}", message);
                let (ours, want) = (p.captures(message), plain.captures(message));
                proptest::prop_assert_eq!(ours.is_some(), want.is_some(), "{}", message);
                let (Some(ours), Some(want)) = (ours, want) else { continue };
                for i in 0..want.len() {
                    proptest::prop_assert_eq!(ours.get(i), want.get(i).map(|m| m.as_str()));
                }
            }
        }
    }

    /// The captures every built-in pattern gives each corpus message that
    /// starts with its prefix are those of the `regex` crate's own engine
    /// (the patterns run without its DFA scan: see [`matcher`]).
    #[test]
    fn captures_are_the_regex_crates_on_the_corpus() {
        let set = PatternSet::load(true, &[]).unwrap();
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut lines = Vec::new();
        for case in std::fs::read_dir(&corpus).unwrap() {
            for f in std::fs::read_dir(case.unwrap().path())
                .into_iter()
                .flatten()
            {
                let path = f.unwrap().path();
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("input.log"))
                {
                    let bytes = std::fs::read(&path).unwrap();
                    lines.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
                }
            }
        }
        let (mut matched, mut missed) = (0, 0);
        for p in &set.patterns {
            let plain = Regex::new(&p.regex_text).unwrap();
            let prefix = p.prefix.as_deref().unwrap();
            for line in &lines {
                let Some(at) = line.find(prefix) else {
                    continue;
                };
                let message = &line[at..];
                let ours = p.captures(message);
                let want = plain.captures(message);
                assert_eq!(ours.is_some(), want.is_some(), "{}: {message}", p.name);
                let (Some(ours), Some(want)) = (ours, want) else {
                    missed += 1;
                    continue;
                };
                matched += 1;
                for i in 0..want.len() {
                    assert_eq!(
                        ours.get(i),
                        want.get(i).map(|m| m.as_str()),
                        "{}: {message}",
                        p.name
                    );
                }
            }
        }
        assert!(
            matched > 100 && missed > 10,
            "{matched} matched, {missed} missed"
        );
    }

    #[test]
    fn builtin_patterns_load() {
        let set = PatternSet::load(true, &[]).unwrap();
        assert!(set.len() >= 16, "{}", set.len());
        assert!(set.keywords().iter().any(|k| k == "Circuit breaker"));
    }

    #[test]
    fn errors_name_file_pattern_and_key() {
        let e = one("keywords=['X']\ncomponent='c'\n[[pattern]]\nname='p'\nevent_type='e'\nregex='^X (?P<nope>.)'\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("t.toml: pattern \"p\": capture \"nope\""),
            "{e}"
        );
        let e = one("keywords=['X']\ncomponent='c'\n[[pattern]]\nname='p'\nevent_type='e'\nregex='^X'\ncolour='red'\n").unwrap_err();
        assert!(
            e.to_string().contains("t.toml") && e.to_string().contains("colour"),
            "{e}"
        );
        let e = one(
            "keywords=['X']\ncomponent='c'\n[[pattern]]\nname='p'\nevent_type='e'\nregex='^X ('\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("pattern \"p\": regex"), "{e}");
        let e = one("keywords=['X']\ncomponent='c'\n[[pattern]]\nname='p'\nevent_type='e'\nregex='^X'\nset={failure_count='many'}\n").unwrap_err();
        assert!(e.to_string().contains("set.failure_count"), "{e}");
    }

    #[test]
    fn a_pattern_that_could_skip_the_prefilter_is_refused() {
        let e = one("keywords=['Circuit breaker']\ncomponent='c'\n[[pattern]]\nname='p'\nevent_type='e'\nregex='breaker (?P<new_state>\\w+)'\n").unwrap_err();
        assert!(e.to_string().contains("none of the file's keywords"), "{e}");
        assert!(one("keywords=['Circuit breaker']\ncomponent='c'\n[[pattern]]\nname='p'\nevent_type='e'\nregex='^(?:Circuit breaker A|Circuit breaker B)'\n").is_ok());
        assert!(one("keywords=['done']\ncomponent='c'\n[[pattern]]\nname='p'\nevent_type='e'\nregex='\\d+ done$'\n").is_ok());
    }

    #[test]
    fn filters_and_ignore() {
        let set = one(
            "keywords=['K']\ncomponent='c'\n\
             [[pattern]]\nname='noise'\nregex='^K noise'\nignore=true\n\
             [[pattern]]\nname='warn'\nevent_type='e'\nregex='^K (?P<metadata.n>\\d+)'\nlevels=['WARNING']\nlogger='^risk\\.'\ntypes={'metadata.n'='int'}\n",
        )
        .unwrap();
        assert!(matches!(
            set.find("K noise here", None, None),
            Matched::Ignored(_)
        ));
        assert!(matches!(
            set.find("K 5", Some("WARNING"), Some("risk.x")),
            Matched::Event(..)
        ));
        assert!(matches!(
            set.find("K 5", Some("INFO"), Some("risk.x")),
            Matched::Nothing
        ));
        assert!(matches!(
            set.find("K 5", Some("WARNING"), Some("other")),
            Matched::Nothing
        ));
        let Matched::Event(p, caps) = set.find("K 5", Some("WARNING"), Some("risk.x")) else {
            unreachable!()
        };
        let mut f = EventFields::default();
        p.extract(&caps, &mut f).unwrap();
        assert_eq!(f.metadata("n"), Some(&Val::Int(5)));
    }

    /// The capturing regex starts after its leading literal: what it finds
    /// must be what the whole regex finds, its look-arounds seeing the lead,
    /// and a lead longer than the literals the prefix is taken from must
    /// still be matched whole.
    #[test]
    fn the_lead_is_matched_and_seen() {
        let long = "K".to_owned() + &"x".repeat(300);
        let set = one(&format!(
            "keywords=['K']\ncomponent='c'\n\
             [[pattern]]\nname='word'\nevent_type='e'\nregex='^K stop\\b(?P<symbol>.*)'\n\
             [[pattern]]\nname='long'\nevent_type='e'\nregex='^{long}(?P<symbol>\\d+)'\n"
        ))
        .unwrap();
        assert_eq!(set.patterns[0].lead, "K stop".len());
        assert_eq!(set.patterns[1].lead, long.len());
        let symbol = |message: &str| match set.find(message, None, None) {
            Matched::Event(p, caps) => Some((p.name.clone(), caps.get(1).map(str::to_owned))),
            _ => None,
        };
        assert_eq!(
            symbol("K stop AAPL"),
            Some(("word".into(), Some(" AAPL".into())))
        );
        assert_eq!(
            symbol("K stopAAPL"),
            None,
            "\\b sees the lead's last letter"
        );
        assert_eq!(
            symbol(&format!("{long}42")),
            Some(("long".into(), Some("42".into())))
        );
        let mut near = long.clone();
        near.replace_range(200..201, "y");
        assert_eq!(symbol(&format!("{near}42")), None, "differs past 100 bytes");
        let Matched::Event(_, caps) = set.find("K stop AAPL", None, None) else {
            unreachable!()
        };
        assert_eq!(
            caps.get(0),
            Some("K stop AAPL"),
            "group 0 is the whole match"
        );
    }

    /// A line on which the walk gives up (a repeated group past its turns)
    /// is answered by the crate's engine: the same event, the same groups,
    /// for an event pattern and an ignore pattern alike.
    #[test]
    fn a_walk_that_gives_up_is_answered_by_the_regex_crate() {
        let set = one(
            "keywords=['K']\ncomponent='c'\n\
             [[pattern]]\nname='list'\nevent_type='e'\nregex='^K list: (?:(?P<symbol>\\w+) )+end$'\n\
             [[pattern]]\nname='noise'\nignore=true\nregex='^K noise: (?:\\w+ )+end$'\n",
        )
        .unwrap();
        assert!(set.patterns.iter().all(|p| p.program.is_some()));
        let words = "ab ".repeat(10_000);
        let message = format!("K list: {words}last end");
        let Matched::Event(p, caps) = set.find(&message, None, None) else {
            panic!("no event")
        };
        assert_eq!(p.name, "list");
        assert_eq!(caps.get(1), Some("last"));
        assert_eq!(caps.get(0), Some(message.as_str()));
        let noise = format!("K noise: {words}end");
        assert!(matches!(set.find(&noise, None, None), Matched::Ignored(_)));
        let miss = format!("K noise: {words}end.");
        assert!(matches!(set.find(&miss, None, None), Matched::Nothing));
    }

    /// A pattern that is not anchored is found anywhere in the message, as
    /// the regex crate finds it (the built-in patterns are all anchored, so
    /// the corpus comparison does not cover it).
    #[test]
    fn a_pattern_not_anchored_is_found_anywhere() {
        let set = one("keywords=['K']\ncomponent='c'\n\
             [[pattern]]\nname='inside'\nevent_type='e'\nregex='K (?P<symbol>\\w+)'\n")
        .unwrap();
        let Matched::Event(p, caps) = set.find("xx K AAPL", None, None) else {
            panic!("not found")
        };
        assert_eq!(p.lead, 0);
        assert_eq!(caps.get(1), Some("AAPL"));
        assert_eq!(
            caps.get(0),
            Some("K AAPL"),
            "group 0 starts where it matched"
        );
    }
}
