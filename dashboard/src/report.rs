//! CSV export of events. Attackers choose user names, passwords and commands, so every
//! cell that a spreadsheet would read as a formula is defused with a leading `'`.

use honeybee_proto::admin::StoredEvent;
use honeybee_proto::event::EventKind;

pub const CSV_HEADER: &str =
    "time,node,service,kind,source_ip,source_port,session,user,password,command,detail";

/// One CSV cell: quoted when needed, formula triggers neutralised.
pub fn cell(s: &str) -> String {
    let mut v = String::with_capacity(s.len() + 2);
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.push('\'');
    }
    v.push_str(s);
    if v.contains([',', '"', '\n', '\r']) || v.starts_with(' ') {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

pub fn csv(events: &[StoredEvent]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for e in events {
        let ev = &e.event;
        let (user, password, command) = match &ev.kind {
            EventKind::AuthAttempt(a) => (
                a.username.clone(),
                a.password.clone().unwrap_or_default(),
                String::new(),
            ),
            EventKind::Command { line } => (String::new(), String::new(), line.clone()),
            _ => Default::default(),
        };
        let line = honeybee_core::json::event_line(e);
        let row = [
            honeybee_core::json::rfc3339(ev.time_ms),
            e.node.to_string(),
            ev.service.clone(),
            ev.kind.name().to_owned(),
            ev.src.map(|s| s.ip().to_string()).unwrap_or_default(),
            ev.src.map(|s| s.port().to_string()).unwrap_or_default(),
            ev.session.map(|s| s.to_hex()).unwrap_or_default(),
            user,
            password,
            command,
            line,
        ];
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(cell("root"), "root");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(cell("-2+3"), "'-2+3");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }
}
