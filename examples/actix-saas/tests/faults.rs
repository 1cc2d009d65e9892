//! The fault cases (`contract_suite::faults`) and several instances behind a load balancer
//! (`contract_suite::cluster`), on Postgres: each prints what it measured (`--nocapture`).

contract_suite::fault_suite!(env!("CARGO_BIN_EXE_actix-saas"));
