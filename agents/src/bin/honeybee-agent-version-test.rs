//! `honeybee-agent` built with the `version-override` feature: the same program, reporting
//! the version `HONEYBEE_VERSION_OVERRIDE` held at compile time. Only the end-to-end
//! upgrade test builds it (see `tests/upgrade.rs`).

#[path = "honeybee-agent.rs"]
mod agent;

fn main() -> std::process::ExitCode {
    agent::main()
}
