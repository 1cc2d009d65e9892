//! The fault cases (`contract_suite::faults`) and several instances behind a load balancer
//! (`contract_suite::cluster`), on Postgres: each prints what it measured (`--nocapture`).

const BIN: &str = env!("CARGO_BIN_EXE_axum-saas");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_10_s_under_load() {
    contract_suite::faults::postgres_outage(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_connection_killed_under_load() {
    contract_suite::faults::change_feed_listener_killed(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_killed_with_sigkill_mid_traffic() {
    contract_suite::faults::instance_killed(BIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_a_load_balancer() {
    contract_suite::cluster::three_instances(BIN).await;
}
