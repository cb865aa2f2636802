//! A terminal chat with the task assistant.
//!
//! ```text
//! cargo run -p chatkit-engine-examples --bin chat
//! ```
//!
//! Uses `DATABASE_URL` (default: `sqlite://chatkit.db` in the working
//! directory). Without `OPENAI_API_KEY` it answers with the offline scripted
//! model, which understands task requests in English and Urdu but is not a
//! language model. Commands: `/new` starts a new thread, `/quit` exits.

use chatkit_engine::agents::{RunConfig, Runner};
use chatkit_engine::engine::{ChatEngine, Response};
use chatkit_engine::models::{Dialect, Model, OpenAiCompatible};
use chatkit_engine::protocol::{ItemKind, TaskKind, ThreadItemUpdate, ThreadStreamEvent};
use chatkit_engine::todo::{self, Assistant};
use chatkit_engine::{RequestContext, Result, store};
use serde_json::json;
use std::io::{BufRead, Write};
use std::sync::Arc;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://chatkit.db".into());
    let database = store::connect(&database_url).await?;
    let model = choose_model()?;
    let runner = Runner::new(RunConfig::new(model));
    let responder = Assistant::new(todo::task_table(&database).await?, runner);
    let engine = ChatEngine::builder()
        .shared_store(database.store())
        .responder(responder)
        .build()?;
    let user = std::env::var("CHAT_USER").unwrap_or_else(|_| "local-user".into());
    println!("Chatting as `{user}` (database: {database_url}). /new starts a thread, /quit exits.");

    let mut thread_id: Option<String> = None;
    let stdin = std::io::stdin();
    loop {
        print!("you> ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            return Ok(());
        }
        let text = line.trim();
        match text {
            "" => continue,
            "/quit" => return Ok(()),
            "/new" => {
                thread_id = None;
                println!("(new thread)");
                continue;
            }
            _ => {}
        }
        let input = json!({"content":[{"type":"input_text","text":text}],"attachments":[],"inference_options":{}});
        let body = match &thread_id {
            None => json!({"type":"threads.create","params":{"input":input}}),
            Some(id) => {
                json!({"type":"threads.add_user_message","params":{"thread_id":id,"input":input}})
            }
        };
        let ctx = RequestContext::new(user.clone());
        let Response::Stream(mut stream) = engine.process(body.to_string().as_bytes(), ctx).await?
        else {
            continue;
        };
        let mut answering = false;
        while let Some(event) = stream.next_event().await {
            match event {
                ThreadStreamEvent::ThreadCreated { thread } => thread_id = Some(thread.id),
                ThreadStreamEvent::ItemUpdated {
                    update: ThreadItemUpdate::TextDelta { delta, .. },
                    ..
                } => {
                    if !answering {
                        print!("assistant> ");
                        answering = true;
                    }
                    print!("{delta}");
                    let _ = std::io::stdout().flush();
                }
                ThreadStreamEvent::ItemDone { item } => {
                    if let ItemKind::Workflow(workflow) = &item.kind {
                        for task in &workflow.workflow.tasks {
                            if let TaskKind::Custom {
                                title: Some(title), ..
                            } = &task.kind
                            {
                                println!("  [{title}]");
                            }
                        }
                    }
                    if matches!(item.kind, ItemKind::AssistantMessage(_)) && answering {
                        println!();
                        answering = false;
                    }
                }
                ThreadStreamEvent::Error { message, .. } => {
                    println!(
                        "\n(error: {})",
                        message.unwrap_or_else(|| "the response failed".into())
                    );
                }
                _ => {}
            }
        }
    }
}

/// A real model when `OPENAI_API_KEY` is set (`OPENAI_BASE_URL` and
/// `CHAT_MODEL` pick the provider, e.g. Xiaomi MiMo), else the offline one.
fn choose_model() -> Result<Arc<dyn Model>> {
    let Ok(api_key) = std::env::var("OPENAI_API_KEY") else {
        println!(
            "Model: offline scripted model (development only; set OPENAI_API_KEY to use a real model)."
        );
        return Ok(Arc::new(todo::offline_model()));
    };
    let base_url =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());
    let model = std::env::var("CHAT_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    println!("Model: {model} at {base_url}");
    let client = OpenAiCompatible::builder(model)
        .base_url(base_url.clone())
        .api_key(api_key)
        .dialect(Dialect::for_base_url(&base_url))
        .build()?;
    Ok(Arc::new(client))
}
