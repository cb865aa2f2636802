# Stage: the uniffi binding, through its generated Python and Kotlin (sourced by scripts/test).
#
# 1. bindings-uniffi/scripts/generate.sh --check: builds the debug cdylib and
#    the crate's uniffi-bindgen, generates Kotlin, Swift and Python, and fails
#    if the committed bindings-uniffi/generated/ differ (commit the output of
#    generate.sh without --check).
# 2. Python: the generated module and the library in a temp dir; the plain
#    script bindings-uniffi/tests/python/test_uniffi.py (standard library
#    only: a full turn on SQLite with the offline model, cancel mid-stream
#    keeping the partial answer, a free event loop, host tools (one that
#    replaces list_tasks, one that fails), JWT, error codes).
# 3. Kotlin on the JVM: the npm package kotlin-compiler (kotlinc-jvm, the
#    stdlib, kotlinx-coroutines-core-jvm) installed into a cache dir, JNA from
#    Debian's libjna-java (installed with apt-get when missing and root);
#    compiles the generated Kotlin with tests/kotlin/EngineTest.kt (the same
#    checks; the jar is cached by the sources' hash) and runs it.
#
# Environment from scripts/test: ROOT, CARGO_TARGET_DIR, CARGO_LOCKED, VENV.
# Optional: CHATKIT_KOTLIN_HOME (default /var/tmp/chatkit-kotlin-<version>).

KOTLIN_COMPILER_VERSION=2.4.20
uniffi_dir="$ROOT/bindings-uniffi"
work="$CARGO_TARGET_DIR/uniffi-tests"
mkdir -p "$work"

# ---- 1. build, generate, drift check -----------------------------------------
lib="$("$uniffi_dir/scripts/generate.sh" --check | tail -n 1)"
[[ -f "$lib" ]] || { echo "the uniffi library was not built: $lib" >&2; exit 1; }

# ---- 2. Python ---------------------------------------------------------------
python="python3"
[[ -x "${VENV:-}/bin/python" ]] && python="$VENV/bin/python"
rm -rf "$work/python"
mkdir -p "$work/python"
cp "$uniffi_dir/generated/python/chatkit_engine_uniffi.py" "$work/python/"
ln -s "$lib" "$work/python/$(basename "$lib")"
echo "-- python ($("$python" --version 2>&1))"
PYTHONPATH="$work/python" "$python" "$uniffi_dir/tests/python/test_uniffi.py"

# ---- 3. Kotlin on the JVM ----------------------------------------------------
command -v java >/dev/null || { echo "java not found: install a JDK 17+ (Debian: openjdk-17-jdk-headless)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: needed for the npm package kotlin-compiler" >&2; exit 1; }
kotlin_home="${CHATKIT_KOTLIN_HOME:-/var/tmp/chatkit-kotlin-$KOTLIN_COMPILER_VERSION}"
kotlin="$kotlin_home/node_modules/kotlin-compiler"
if [[ ! -x "$kotlin/bin/kotlinc-jvm" || ! -f "$kotlin/lib/kotlinx-coroutines-core-jvm.jar" ]]; then
  echo "installing kotlin-compiler@$KOTLIN_COMPILER_VERSION into $kotlin_home (npm)"
  mkdir -p "$kotlin_home"
  npm install --prefix "$kotlin_home" --no-audit --no-fund --no-save --loglevel=error \
    "kotlin-compiler@$KOTLIN_COMPILER_VERSION"
fi
jna=/usr/share/java/jna.jar
if [[ ! -f "$jna" ]]; then
  [[ "$(id -u)" == "0" ]] || { echo "$jna missing: install Debian's libjna-java (apt-get install libjna-java)" >&2; exit 1; }
  echo "installing libjna-java (apt-get)"
  if ! apt-get install -y -qq libjna-java >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq libjna-java >/dev/null
  fi
fi
coroutines="$kotlin/lib/kotlinx-coroutines-core-jvm.jar"
sources=("$uniffi_dir/generated/kotlin/chatkit/engine/chatkit_engine_uniffi.kt" "$uniffi_dir/tests/kotlin/EngineTest.kt")
key="$(cat "${sources[@]}" | sha256sum | cut -c1-16)-$KOTLIN_COMPILER_VERSION"
jar="$work/kotlin/engine-test-$key.jar"
if [[ ! -f "$jar" ]]; then
  echo "-- kotlinc-jvm (a minute on 2 cores)"
  rm -rf "$work/kotlin"
  mkdir -p "$work/kotlin"
  "$kotlin/bin/kotlinc-jvm" -nowarn -cp "$jna:$coroutines" "${sources[@]}" -d "$jar.tmp.jar"
  mv "$jar.tmp.jar" "$jar"
fi
echo "-- kotlin ($(java -version 2>&1 | head -n 1))"
java -Djna.library.path="$(dirname "$lib")" \
  -cp "$jar:$kotlin/lib/kotlin-stdlib.jar:$coroutines:$jna" \
  chatkit.engine.test.EngineTestKt
