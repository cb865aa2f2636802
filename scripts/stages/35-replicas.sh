# Several replicas on one PostgreSQL through a transaction-mode PgBouncer
# (sourced by scripts/test with ROOT, CARGO_TARGET_DIR, DATABASE_URL,
# CARGO_LOCKED set). Issue 17; see README "Running several replicas".
#
# 1. Installs Debian's pgbouncer (1.18: no protocol-level prepared
#    statements) with apt-get when it is missing.
# 2. Writes its config and auth file to a temp dir and starts it on a free
#    loopback port, pool_mode = transaction, every database of DATABASE_URL's
#    server behind it, small server pools (so clients share server
#    connections, as on Neon).
# 3. Runs through it: the Rust store behaviour suite (CHATKIT_TEST_POOLER_URL),
#    the turn-lease engine tests, and the replica tests of
#    examples/tests/replicas.rs (three `serve` processes, a slow local
#    OpenAI-compatible server, SIGKILL, loadtest round-robin).
# pgbouncer is stopped on exit, also on failure.
cd "$ROOT"

if ! command -v pgbouncer >/dev/null && [[ ! -x /usr/sbin/pgbouncer ]]; then
  echo "35-replicas: installing pgbouncer (apt-get)"
  if [[ "$(id -u)" != "0" ]]; then
    echo "35-replicas: pgbouncer is missing and apt-get needs root; install the pgbouncer package" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null; }
fi
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
"$PGBOUNCER" --version | head -n 1

# The upstream server, from DATABASE_URL (postgres://user@host:port/db).
rest="${DATABASE_URL#*://}"
db_user="${rest%%@*}"
db_user="${db_user%%:*}"
[[ "$rest" == *@* ]] || db_user=postgres
read -r db_host db_port < <(db_host_port)

workdir="$(mktemp -d /tmp/chatkit-pgbouncer.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
pgb_pid=""
stop_pgbouncer() {
  if [[ -n "$pgb_pid" ]] && kill -0 "$pgb_pid" 2>/dev/null; then
    kill "$pgb_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pgb_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pgb_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap stop_pgbouncer EXIT

cat >"$workdir/userlist.txt" <<USERS
"$db_user" ""
USERS
cat >"$workdir/pgbouncer.ini" <<INI
[databases]
* = host=$db_host port=$db_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $workdir/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 6
reserve_pool_size = 0
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
logfile = $workdir/pgbouncer.log
pidfile = $workdir/pgbouncer.pid
INI

# PgBouncer refuses to run as root.
if [[ "$(id -u)" == "0" ]]; then
  chown -R postgres "$workdir"
  runuser -u postgres -- "$PGBOUNCER" -q "$workdir/pgbouncer.ini" &
else
  "$PGBOUNCER" -q "$workdir/pgbouncer.ini" &
fi
pgb_pid=$!
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  kill -0 "$pgb_pid" 2>/dev/null || { cat "$workdir/pgbouncer.log" >&2 || true; echo "35-replicas: pgbouncer exited" >&2; exit 1; }
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "35-replicas: pgbouncer did not come up on port $port" >&2; exit 1; }
echo "pgbouncer (transaction mode) on 127.0.0.1:$port in front of $db_host:$db_port"

export CHATKIT_TEST_POOLER_URL="postgres://$db_user@127.0.0.1:$port/postgres"

# The store behaviour suite and the cross-replica engine tests, through the pooler.
cargo nextest run "${CARGO_LOCKED[@]}" -p chatkit-engine --test store_suite --test engine --test pg_pool \
  -E 'test(/postgres::/) | test(/lease/) | test(/replica/) | test(/transaction_pooler/)'

# Three serve replicas behind the pooler (#[ignore]d elsewhere: they need it).
cargo build "${CARGO_LOCKED[@]}" -q -p chatkit-engine-examples --bin serve --bin loadtest
cargo nextest run "${CARGO_LOCKED[@]}" -p chatkit-engine-examples --test replicas --run-ignored only \
  --test-threads 1
