//! Where the process's own log lines go and how they look. Under systemd,
//! stderr is the journal: it stamps each line itself, so a line carries no
//! time of its own, no colour escapes, and starts with its level as the
//! journal's priority (`<3>` error … `<7>` debug, sd-daemon(3)), so
//! `journalctl -p warning -u risktail` filters. systemd says stderr is the
//! journal by `JOURNAL_STREAM` (`device:inode` of the stream); an inherited
//! value that does not match stderr (stderr redirected to a pipe or file by
//! a child's caller) means plain lines. Colour only on a terminal.
//! `RISKTAIL_LOG_FORMAT=json` gives JSON lines for log pipelines.

use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How stderr is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A person at a terminal: colour and time.
    Terminal,
    /// systemd's journal: priority prefixes, no time, no colour.
    Journal,
    /// A file or a pipe: time, no colour.
    Plain,
    /// JSON lines (`RISKTAIL_LOG_FORMAT=json`).
    Json,
}

/// Decides from the environment and stderr itself.
pub fn sink() -> Sink {
    if std::env::var("RISKTAIL_LOG_FORMAT").is_ok_and(|v| v == "json") {
        return Sink::Json;
    }
    if stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()) {
        return Sink::Journal;
    }
    if std::io::stderr().is_terminal() {
        Sink::Terminal
    } else {
        Sink::Plain
    }
}

/// Whether `journal_stream` (`device:inode`) names stderr's own file.
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    meta.dev() == dev && meta.ino() == ino
}

/// The sd-daemon(3) priority of a level.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Lines for the journal: `<priority>` then the level, target and fields.
struct JournalFormat(Format<Full, ()>);

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the subscriber for `sink` with `filter`.
pub fn init(sink: Sink, filter: tracing_subscriber::EnvFilter) {
    let base = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match sink {
        Sink::Terminal => base.with_ansi(true).init(),
        Sink::Plain => base.with_ansi(false).init(),
        Sink::Json => base.json().init(),
        Sink::Journal => base
            .with_ansi(false)
            .fmt_fields(DefaultFields::new())
            .event_format(JournalFormat(Format::default().without_time()))
            .init(),
    }
}

/// The prefix of the process's last line (the fatal error) for `sink`.
pub fn error_prefix(sink: Sink) -> &'static str {
    if sink == Sink::Journal { "<3>" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_stream_of_another_file_is_not_the_journal() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("0:0")));
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::DEBUG), 7);
    }
}
