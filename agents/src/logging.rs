//! Log output for every HoneyBee binary (`honeybee`, `honeybee-agent`): human lines on
//! standard error, coloured only when standard error is a terminal (a log file or a
//! journal gets no ANSI escapes), or one JSON object a line (`--log-format json`) for log
//! shippers. `RUST_LOG` filters as usual.

use std::io::IsTerminal;

/// How log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line a record; colour only on a terminal and without `NO_COLOR`.
    #[default]
    Human,
    /// One JSON object a line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" | "text" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use human or json")),
        }
    }
}

/// The environment variable that sets the format when `--log-format` is not given.
pub const LOG_FORMAT_ENV: &str = "HONEYBEE_LOG_FORMAT";

/// Whether human logs get colour: only on a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
pub fn want_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber writing to standard error. `default_filter` applies
/// when `RUST_LOG` is unset or invalid. A second call does nothing.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(want_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Reports the error that ends the program: `error: …` for a person, or an ERROR record
/// for a log shipper (which would not parse a bare line).
pub fn fatal(format: LogFormat, message: &str) {
    match format {
        LogFormat::Human => eprintln!("error: {message}"),
        LogFormat::Json => tracing::error!(target: "honeybee", "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("human".parse::<LogFormat>(), Ok(LogFormat::Human));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(want_colour(true, None));
        assert!(want_colour(true, Some(OsStr::new(""))));
        assert!(!want_colour(false, None));
        assert!(!want_colour(true, Some(OsStr::new("1"))));
    }
}
