//! The `uniffi-bindgen` of this crate's uniffi version (see `scripts/generate.sh`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
