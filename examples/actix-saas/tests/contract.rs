//! The HTTP contract suite, run against this app on SQLite and on Postgres.

contract_suite::contract_suite!(env!("CARGO_BIN_EXE_actix-saas"));
