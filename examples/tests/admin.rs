//! `chatkit-admin` says clearly what is wrong when it cannot run. (Its work,
//! `PostgresStore::migrate` and `todo::history::import_history`, is tested
//! on the app's database shapes in core/tests/app_database.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn admin(args: &[&str], database_url: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatkit-admin"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("DATABASE_URL_DIRECT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn admin_commands_explain_what_is_wrong_when_they_cannot_run() {
    let (code, err) = admin(&[], "postgres://localhost/app");
    assert_eq!(code, 2);
    assert!(err.contains("usage: chatkit-admin migrate"), "{err}");

    let (code, err) = admin(
        &["import-history", "--everything"],
        "postgres://localhost/app",
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown argument `--everything`"), "{err}");

    for command in ["migrate", "import-history"] {
        let (code, err) = admin(&[command], "sqlite://chatkit.db");
        assert_eq!(code, 2);
        assert!(
            err.contains("must name the app's PostgreSQL database"),
            "{err}"
        );
    }

    let (code, err) = admin(&["migrate"], "postgres://app:hunter2@127.0.0.1:1/app");
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot reach the database at postgres://app:***@127.0.0.1:1/app"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}
