# Server-level fault tests that need PostgreSQL's server binaries (sourced by
# scripts/test with ROOT, CARGO_TARGET_DIR, CARGO_LOCKED set).
#
# examples/tests/faults.rs::postgres_restart_mid_load_fails_cleanly_and_recovers
# starts a PRIVATE cluster (initdb into a temp dir, its own port and socket
# dir; as root through `runuser -u postgres`), runs `serve` against it, stops
# and starts that cluster in the middle of a load and checks that requests
# fail cleanly and the server recovers by itself. The machine's shared
# PostgreSQL is never touched. The test is #[ignore]d so that a plain
# `cargo nextest run` stays portable; here it must run: missing tools fail
# the stage instead of skipping it.
cd "$ROOT"

pg_bindir=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
    pg_bindir="$dir"
    break
  fi
done
if [[ -z "$pg_bindir" ]] && command -v pg_config >/dev/null; then
  pg_bindir="$(pg_config --bindir)"
fi
if [[ -z "$pg_bindir" || ! -x "$pg_bindir/initdb" ]]; then
  echo "70-faults: PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql" >&2
  exit 1
fi
if [[ "$(id -u)" == "0" ]]; then
  command -v runuser >/dev/null || { echo "70-faults: runuser not found (needed as root)" >&2; exit 1; }
  id postgres >/dev/null 2>&1 || { echo "70-faults: no 'postgres' OS user to run the private cluster" >&2; exit 1; }
fi
echo "private PostgreSQL cluster from $pg_bindir"

cargo nextest run "${CARGO_LOCKED[@]}" -p chatkit-engine-examples --test faults --run-ignored only
