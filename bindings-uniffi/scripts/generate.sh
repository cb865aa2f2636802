#!/usr/bin/env bash
# Generates the Kotlin, Swift and Python bindings of chatkit-engine-uniffi
# into bindings-uniffi/generated/, with the uniffi-bindgen of the crate's own
# uniffi version (the `uniffi-bindgen` bin, feature `cli`).
#
#   bindings-uniffi/scripts/generate.sh           # (re)write generated/
#   bindings-uniffi/scripts/generate.sh --check   # fail if generated/ is not what the code generates
#
# Steps: `cargo build -p chatkit-engine-uniffi --features cli` (the debug
# library and the generator in one build), then `uniffi-bindgen generate
# --no-format` on the library for each language (no formatter, so the output
# does not depend on what is installed). Settings: bindings-uniffi/uniffi.toml.
#
# Output (committed, so reviews show API changes):
#   generated/kotlin/chatkit/engine/chatkit_engine_uniffi.kt   package chatkit.engine (JNA)
#   generated/swift/ChatKitEngine.swift, ChatKitEngineFFI.h, ChatKitEngineFFI.modulemap
#   generated/python/chatkit_engine_uniffi.py                  module chatkit_engine_uniffi (ctypes)
#
# Environment: CARGO_TARGET_DIR (default <repo>/target); CI=true adds --locked.
# Prints the path of the built library on its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

target="${CARGO_TARGET_DIR:-$root/target}"
locked=()
[[ "${CI:-}" == "true" ]] && locked=(--locked)
(cd "$root" && cargo build ${locked[@]+"${locked[@]}"} -q -p chatkit-engine-uniffi --features cli)

case "$(uname -s)" in
  Darwin) lib="$target/debug/libchatkit_engine_uniffi.dylib" ;;
  MINGW* | MSYS* | CYGWIN*) lib="$target/debug/chatkit_engine_uniffi.dll" ;;
  *) lib="$target/debug/libchatkit_engine_uniffi.so" ;;
esac
bindgen="$target/debug/uniffi-bindgen"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for language in kotlin swift python; do
  (cd "$here" && "$bindgen" generate --no-format --language "$language" --out-dir "$out/$language" "$lib" >/dev/null)
done

if $check; then
  if ! diff -r "$here/generated" "$out" >/dev/null 2>&1; then
    diff -r "$here/generated" "$out" | head -n 40 >&2 || true
    echo "bindings-uniffi/generated/ is out of date: run bindings-uniffi/scripts/generate.sh and commit the result" >&2
    exit 1
  fi
  echo "bindings-uniffi/generated/ is up to date" >&2
else
  rm -rf "$here/generated"
  cp -r "$out" "$here/generated"
  echo "wrote bindings-uniffi/generated/" >&2
fi
echo "$lib"
