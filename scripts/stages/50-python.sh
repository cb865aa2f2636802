# scripts/stages/50-python.sh: the Python binding (bindings-python) and the FastAPI example.
#
# Sourced by scripts/test (ROOT, CARGO_TARGET_DIR, DATABASE_URL, CARGO_LOCKED set).
# Builds the chatkit_engine wheel with maturin (abi3, dev profile: it reuses the
# debug artifacts of the Rust stages), installs it into its own venv with the
# pinned test tools, and runs bindings-python/tests (pytest + pytest-asyncio;
# httpx over ASGI and a real uvicorn on 127.0.0.1; SQLite and PostgreSQL).
#
#   CHATKIT_PYVENV   venv of this stage, default /var/tmp/chatkit-engine-pyvenv (kept)
#   CHATKIT_PY_RELEASE=1   build the wheel with --release instead

PYVENV="${CHATKIT_PYVENV:-/var/tmp/chatkit-engine-pyvenv}"
if ! "$PYVENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "creating venv $PYVENV"
  rm -rf "$PYVENV"
  python3 -m venv "$PYVENV"
fi
"$PYVENV/bin/python" -m pip install -q -r "$ROOT/bindings-python/tests/requirements.txt"

wheels="$CARGO_TARGET_DIR/python-wheels"
rm -rf "$wheels"
profile=()
[[ "${CHATKIT_PY_RELEASE:-}" == "1" ]] && profile=(--release)
"$PYVENV/bin/maturin" build --strip ${CARGO_LOCKED[@]+"${CARGO_LOCKED[@]}"} ${profile[@]+"${profile[@]}"} \
  --interpreter "$PYVENV/bin/python" --manifest-path "$ROOT/bindings-python/Cargo.toml" --out "$wheels"
"$PYVENV/bin/python" -m pip install -q --force-reinstall --no-deps "$wheels"/chatkit_engine-*.whl

cd "$ROOT/bindings-python"
"$PYVENV/bin/python" -m pytest -q -p no:cacheprovider tests
