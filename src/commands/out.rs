//! A command's result on stdout. A reader that stops reading (`risktail
//! status | head`) ends the output, not the command: the rest is dropped and
//! the command's exit status stays its own, as `parse` does (`println!`
//! panicked there, with a backtrace). Any other failure to write, a redirect
//! onto a full disk, is an error that says so.

use anyhow::Context;
use std::io::Write;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write the result to stdout")
        }
        _ => Ok(()),
    }
}

/// `value` as pretty JSON and a newline, on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print(&(serde_json::to_string_pretty(value)? + "\n"))
}

/// Appends one formatted line to a `String` (as `println!` prints one).
macro_rules! out_line {
    ($s:expr) => {
        $s.push('\n')
    };
    ($s:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = writeln!($s, $($arg)*);
    }};
}
pub(crate) use out_line;
