#!/usr/bin/env bash
# Load benchmark of the example apps' API (docs/benchmarks.md): GET /api/projects with a
# session cookie and with an API token (Bearer, EdDSA), beside the same work without the auth
# layer (/bench/projects, sent with and without the same credential header), interleaved.
# The server is benches/load-target (load-target-axum or load-target-actix): the example apps'
# /api/projects behind the auth layer and the baseline beside it.
#
#   benches/load.sh [axum|actix] [sqlite|postgres]   (default axum sqlite; needs wrk, curl, taskset)
#
# LOAD_DATABASE_URL=postgres://… runs against that existing database (migrated on start, kept
# afterwards; `cargo xtask bench-scale` uses it on its filled database) instead of a fresh one.
#
# PROFILE=dev runs a debug build (dependencies at opt-level 2), and LOAD_TARGET_BIN=<path> a
# load-target binary built already (no build): both only to check that the script works,
# never for numbers.
#
# Method (the project's benchmark method, docs/benchmarks.md): release build; server pinned to core 0 with one worker
# (one tokio worker for axum, one actix worker); wrk pinned to core 1 (-t1 -c32 -d10s); 2 s
# warm-up; bare, bare with the cookie, cookie, bare with the Bearer header, Bearer, … for
# CYCLES cycles (default 3); the medians, the ratio of the medians, and the median of each
# cycle's own ratio (which cancels the drift of a shared machine between cycles).
#
# WORKERS=2 (default 1) gives the server two workers (TOKIO_WORKER_THREADS / ACTIX_WORKERS) on
# both cores (`taskset -c 0,1`), and wrk two threads on the same two cores: server and wrk then
# compete for them, so compare its ratios with a WORKERS=1 run, not its req/s alone.
set -euo pipefail
cd "$(dirname "$0")/.."

APP=axum
case "${1:-}" in axum|actix) APP="$1"; shift ;; esac
STORE="${1:-sqlite}"
CYCLES="${CYCLES:-3}"
DURATION="${DURATION:-10s}"
WORKERS="${WORKERS:-1}"
case "$WORKERS" in
  1) SERVER_CPUS=0; WRK_CPUS=1 ;;
  2) SERVER_CPUS=0,1; WRK_CPUS=0,1 ;;
  *) echo "load.sh: WORKERS must be 1 or 2" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/authkit-target}"

for tool in wrk curl taskset; do
  command -v "$tool" >/dev/null || { echo "load.sh: $tool is missing (apt-get install wrk curl util-linux)" >&2; exit 1; }
done

WORK="$(mktemp -d)"
DB_NAME=""
if [[ -n "${LOAD_TARGET_BIN:-}" ]]; then
  BIN="$LOAD_TARGET_BIN"
else
  PROFILE="${PROFILE:-release}"
  cargo build --profile "$PROFILE" --quiet -p load-target --bin "load-target-$APP"
  case "$PROFILE" in dev) PROFILE_DIR=debug ;; *) PROFILE_DIR="$PROFILE" ;; esac
  # A copy: another checkout building into a shared target directory cannot swap it mid-run.
  cp "$CARGO_TARGET_DIR/$PROFILE_DIR/load-target-$APP" "$WORK/load-target-$APP"
  BIN="$WORK/load-target-$APP"
fi

cleanup() {
  [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -n "$DB_NAME" ]]; then
    psql -q "${PG_ADMIN_URL}" -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

case "$STORE" in
  sqlite) DATABASE_URL="sqlite://$WORK/bench.db" ;;
  postgres)
    if [[ -n "${LOAD_DATABASE_URL:-}" ]]; then
      DATABASE_URL="$LOAD_DATABASE_URL"
    else
      PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
      DB_NAME="loadbench_$$"
      psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null
      DATABASE_URL="${PG_ADMIN_URL%/*}/$DB_NAME"
    fi
    ;;
  *) echo "usage: $0 [axum|actix] [sqlite|postgres]" >&2; exit 2 ;;
esac

mkfifo "$WORK/out"
TOKIO_WORKER_THREADS="$WORKERS" ACTIX_WORKERS="$WORKERS" RUST_LOG=warn BIND=127.0.0.1:0 \
  DATABASE_URL="$DATABASE_URL" AUTH_MAIL_DIR="$WORK/mail" AUTH_KEYS="$WORK/keys" \
  taskset -c "$SERVER_CPUS" "$BIN" >"$WORK/out" 2>"$WORK/err" &
SERVER_PID=$!
read -r line <"$WORK/out"
ADDR="${line#listening on }"
echo "server: load-target-$APP at $ADDR (pid $SERVER_PID, store $STORE, cores $SERVER_CPUS, $WORKERS worker(s); wrk on cores $WRK_CPUS)"

# A user with an organization: GET /api/projects needs read:projects in the active org.
COOKIE="$(curl -sS -o /dev/null -D - "$ADDR/auth/sign-up" -H 'content-type: application/json' \
  -d "{\"email\":\"bench-$$@example.com\",\"password\":\"a long benchmark passphrase\"}" \
  | tr -d '\r' | sed -n 's/^set-cookie: \(authkit_session=[^;]*\).*/\1/Ip')"
curl -sS -o /dev/null -f "$ADDR/orgs" -H "cookie: $COOKIE" -H "origin: $ADDR" \
  -H 'content-type: application/json' -d '{"name":"Bench"}'
TOKEN="$(curl -sS -f "$ADDR/api/tokens" -H "cookie: $COOKIE" -H "origin: $ADDR" \
  -H 'content-type: application/json' -d '{"name":"bench","scopes":["read:projects"]}' \
  | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')"
AUTH_STATUS="$(curl -sS -o /dev/null -w '%{http_code}' "$ADDR/api/projects" -H "cookie: $COOKIE")"
TOKEN_STATUS="$(curl -sS -o /dev/null -w '%{http_code}' "$ADDR/api/projects" -H "authorization: Bearer $TOKEN")"
BARE_STATUS="$(curl -sS -o /dev/null -w '%{http_code}' "$ADDR/bench/projects")"
[[ "$AUTH_STATUS" == 200 && "$TOKEN_STATUS" == 200 && "$BARE_STATUS" == 200 ]] || {
  echo "setup failed: cookie $AUTH_STATUS, token $TOKEN_STATUS, bare $BARE_STATUS" >&2; exit 1; }

run_wrk() { # url [header] -> requests/sec
  local url="$1"; shift
  taskset -c "$WRK_CPUS" wrk -t"$WORKERS" -c32 -d"$DURATION" --latency "$@" "$url" | tee -a "$WORK/wrk.log" \
    | awk '/^Requests\/sec:/ {print $2}'
}

echo "warm-up"
taskset -c "$WRK_CPUS" wrk -t"$WORKERS" -c32 -d2s "$ADDR/bench/projects" >/dev/null
taskset -c "$WRK_CPUS" wrk -t"$WORKERS" -c32 -d2s -H "cookie: $COOKIE" "$ADDR/api/projects" >/dev/null
taskset -c "$WRK_CPUS" wrk -t"$WORKERS" -c32 -d2s -H "authorization: Bearer $TOKEN" "$ADDR/api/projects" >/dev/null

# Five runs a cycle: the bare route with no credential, the bare route with the same
# `Cookie` or `Authorization` header as the authenticated run (the auth-free app serving the
# same requests: the difference to the authenticated run is the auth layer's work alone, not
# the parsing of a 60- or 540-byte header that any app receiving it pays), and the
# authenticated runs.
BARE=(); BARE_C=(); AUTH=(); BARE_T=(); BEARER=()
for ((i = 1; i <= CYCLES; i++)); do
  BARE+=("$(run_wrk "$ADDR/bench/projects")")
  BARE_C+=("$(run_wrk "$ADDR/bench/projects" -H "cookie: $COOKIE")")
  AUTH+=("$(run_wrk "$ADDR/api/projects" -H "cookie: $COOKIE")")
  BARE_T+=("$(run_wrk "$ADDR/bench/projects" -H "authorization: Bearer $TOKEN")")
  BEARER+=("$(run_wrk "$ADDR/api/projects" -H "authorization: Bearer $TOKEN")")
  echo "cycle $i: bare ${BARE[-1]}, bare+cookie header ${BARE_C[-1]}, session cookie ${AUTH[-1]}," \
    "bare+Bearer header ${BARE_T[-1]}, Bearer ${BEARER[-1]} req/s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# ratio NAME_A NAME_B: "ratio of the medians; median of the cycles' ratios" of two series.
ratio() {
  local -n a="$1" b="$2"
  local ma mb paired=()
  ma="$(median "${a[@]}")"; mb="$(median "${b[@]}")"
  for ((k = 0; k < ${#a[@]}; k++)); do
    paired+=("$(awk -v x="${a[k]}" -v y="${b[k]}" 'BEGIN {print x / y}')")
  done
  echo "$(awk -v x="$ma" -v y="$mb" 'BEGIN {printf "%.2f", x / y}'); $(median "${paired[@]}" | awk '{printf "%.2f", $1}')"
}
echo
echo "| route | req/s (median of $CYCLES) |"
echo "|---|---:|"
echo "| GET /bench/projects (no auth layer, no credential) | $(median "${BARE[@]}") |"
echo "| GET /bench/projects (no auth layer, the cookie sent) | $(median "${BARE_C[@]}") |"
echo "| load-target-$APP GET /api/projects (session cookie, $STORE) | $(median "${AUTH[@]}") |"
echo "| GET /bench/projects (no auth layer, the Bearer header sent) | $(median "${BARE_T[@]}") |"
echo "| load-target-$APP GET /api/projects (Bearer sk_live_ EdDSA token, $STORE) | $(median "${BEARER[@]}") |"
echo "| ratio cookie / bare with the same cookie (of the medians; median of the cycles' ratios) | $(ratio AUTH BARE_C) |"
echo "| ratio Bearer / bare with the same header | $(ratio BEARER BARE_T) |"
echo "| ratio cookie / bare without a credential | $(ratio AUTH BARE) |"
echo "| ratio Bearer / bare without a credential | $(ratio BEARER BARE) |"
grep -h "Latency " "$WORK/wrk.log" | tail -2 | sed 's/^/  last runs: /'
