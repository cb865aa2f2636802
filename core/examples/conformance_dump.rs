//! Drives every ChatKit request type through a real `ChatEngine` and writes
//! what the engine produced as JSON lines, for the conformance suite in
//! `tests/conformance` to validate against the official `openai-chatkit`
//! package.
//!
//! Usage: `cargo run -p chatkit-engine --example conformance_dump -- out.jsonl`
//!
//! Each line is `{"case", "request_type", "schema", "json"}` where `json` is
//! the exact text the engine sent. The responder here emits every event,
//! update, item, task, summary and source variant at least once.

use async_trait::async_trait;
use chatkit_engine::engine::{ChatEngine, Responder, Response, Turn, UploadUrls, stream_text};
use chatkit_engine::protocol::{
    Action, Annotation, AnnotationTag, AssistantMessage, AssistantMessageContent, ChoiceOption,
    ClientToolCall, ClientToolCallStatus, GeneratedImage, GeneratedImageItem, HiddenContext,
    IdKind, ItemKind, NoticeLevel, Source, SourceKind, StatusIndicator, StructuredInput,
    StructuredInputItem, StructuredInputKind, StructuredInputStatus, Task, TaskItem, TaskKind,
    ThreadItem, ThreadItemUpdate, ThreadMetadata, ThreadStatus, ThreadStreamEvent, Timestamp,
    WidgetItem, Workflow, WorkflowItem, WorkflowKind, WorkflowSummary, json,
};
use chatkit_engine::store::SqliteStore;
use chatkit_engine::{Error, RequestContext, Result};
use serde_json::{Value, json};
use std::io::Write;

/// Holds the `"hold"` turn until the dump has sent a second message on its
/// thread (the busy-thread case).
static HOLD: tokio::sync::Notify = tokio::sync::Notify::const_new();

struct Showcase;

fn source(title: &str, kind: SourceKind) -> Source {
    Source {
        title: title.into(),
        description: Some("described".into()),
        timestamp: None,
        group: None,
        kind,
    }
}

fn url_source() -> Source {
    source(
        "Example",
        SourceKind::Url {
            url: "https://example.com".into(),
            attribution: Some("example.com".into()),
        },
    )
}

async fn every_item_kind(turn: &mut Turn) -> Result<()> {
    turn.emit(ThreadStreamEvent::Notice {
        level: NoticeLevel::Info,
        message: "Heads up: **demo**".into(),
        title: Some("Note".into()),
    })
    .await?;
    turn.emit(ThreadStreamEvent::ClientEffect {
        name: "highlight".into(),
        data: json!({"index": 3, "nothing": null, "ratio": 0.25})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    })
    .await?;
    turn.emit(ThreadStreamEvent::ProgressUpdate {
        icon: Some("globe".into()),
        text: "Looking things up...".into(),
    })
    .await?;

    // A reasoning workflow with a streamed thought.
    let mut reasoning = turn.new_item(
        IdKind::Workflow,
        ItemKind::Workflow(WorkflowItem {
            workflow: Workflow {
                kind: WorkflowKind::Reasoning,
                tasks: vec![],
                summary: None,
                expanded: false,
            },
        }),
    );
    let reasoning_id = reasoning.id.clone();
    turn.emit(ThreadStreamEvent::ItemAdded {
        item: reasoning.clone(),
    })
    .await?;
    let thought = |content: &str| Task {
        status_indicator: StatusIndicator::None,
        kind: TaskKind::Thought {
            title: None,
            content: content.into(),
        },
    };
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: reasoning_id.clone(),
        update: ThreadItemUpdate::WorkflowTaskAdded {
            task_index: 0,
            task: thought("Need the "),
        },
    })
    .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: reasoning_id.clone(),
        update: ThreadItemUpdate::WorkflowTaskUpdated {
            task_index: 0,
            task: thought("Need the selection."),
        },
    })
    .await?;
    if let ItemKind::Workflow(workflow) = &mut reasoning.kind {
        workflow.workflow.tasks = vec![thought("Need the selection.")];
        workflow.workflow.summary = Some(WorkflowSummary::Duration { duration: 2 });
    }
    turn.emit(ThreadStreamEvent::ItemDone { item: reasoning })
        .await?;

    // A custom workflow with every task kind.
    let tasks = vec![
        Task {
            status_indicator: StatusIndicator::Complete,
            kind: TaskKind::Custom {
                title: Some("Plan".into()),
                icon: Some("check".into()),
                content: Some("step 1".into()),
            },
        },
        Task {
            status_indicator: StatusIndicator::None,
            kind: TaskKind::WebSearch {
                title: Some("Searching".into()),
                title_query: Some("paris".into()),
                queries: vec!["paris weather".into()],
                sources: vec![url_source()],
            },
        },
        Task {
            status_indicator: StatusIndicator::Loading,
            kind: TaskKind::File {
                title: Some("Reading".into()),
                sources: vec![source(
                    "notes.txt",
                    SourceKind::File {
                        filename: "notes.txt".into(),
                    },
                )],
            },
        },
        Task {
            status_indicator: StatusIndicator::None,
            kind: TaskKind::Image {
                title: Some("Drawing".into()),
            },
        },
    ];
    let mut workflow = turn.new_item(
        IdKind::Workflow,
        ItemKind::Workflow(WorkflowItem {
            workflow: Workflow {
                kind: WorkflowKind::Custom,
                tasks: vec![tasks[0].clone()],
                summary: None,
                expanded: true,
            },
        }),
    );
    let workflow_id = workflow.id.clone();
    turn.emit(ThreadStreamEvent::ItemAdded {
        item: workflow.clone(),
    })
    .await?;
    for (index, task) in tasks.iter().enumerate().skip(1) {
        turn.emit(ThreadStreamEvent::ItemUpdated {
            item_id: workflow_id.clone(),
            update: ThreadItemUpdate::WorkflowTaskAdded {
                task_index: index,
                task: task.clone(),
            },
        })
        .await?;
    }
    if let ItemKind::Workflow(item) = &mut workflow.kind {
        item.workflow.tasks = tasks;
        item.workflow.summary = Some(WorkflowSummary::Custom {
            title: "Planned".into(),
            icon: Some("check".into()),
        });
        item.workflow.expanded = false;
    }
    turn.emit(ThreadStreamEvent::ItemDone { item: workflow })
        .await?;

    let task = turn.new_item(
        IdKind::Task,
        ItemKind::Task(TaskItem {
            task: Task::custom(StatusIndicator::None, "Saved", Some("3 tasks".into())),
        }),
    );
    turn.emit(ThreadStreamEvent::ItemDone { item: task })
        .await?;

    // A streamed widget.
    let widget_root = |value: &str, streaming: bool| json!({"type":"Card","children":[{"id":"t","type":"Text","value":value,"streaming":streaming}]});
    let mut widget = turn.new_item(
        IdKind::Message,
        ItemKind::Widget(WidgetItem {
            widget: widget_root("", true),
            copy_text: Some("Hello".into()),
        }),
    );
    let widget_id = widget.id.clone();
    turn.emit(ThreadStreamEvent::ItemAdded {
        item: widget.clone(),
    })
    .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: widget_id.clone(),
        update: ThreadItemUpdate::WidgetTextDelta {
            component_id: "t".into(),
            delta: "Hel".into(),
            done: false,
        },
    })
    .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: widget_id.clone(),
        update: ThreadItemUpdate::WidgetComponentUpdated {
            component_id: "t".into(),
            component: json!({"id":"t","type":"Text","value":"Hell","streaming":true}),
        },
    })
    .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: widget_id.clone(),
        update: ThreadItemUpdate::WidgetRootUpdated {
            widget: widget_root("Hello", false),
        },
    })
    .await?;
    if let ItemKind::Widget(item) = &mut widget.kind {
        item.widget = widget_root("Hello", false);
    }
    turn.emit(ThreadStreamEvent::ItemDone { item: widget })
        .await?;

    // A generated image.
    let mut image = turn.new_item(
        IdKind::Message,
        ItemKind::GeneratedImage(GeneratedImageItem { image: None }),
    );
    let image_id = image.id.clone();
    turn.emit(ThreadStreamEvent::ItemAdded {
        item: image.clone(),
    })
    .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: image_id,
        update: ThreadItemUpdate::GeneratedImageUpdated {
            image: GeneratedImage {
                id: "ig_1".into(),
                url: "data:image/png;base64,AAAA".into(),
            },
            progress: Some(0.5),
        },
    })
    .await?;
    image.kind = ItemKind::GeneratedImage(GeneratedImageItem {
        image: Some(GeneratedImage {
            id: "ig_1".into(),
            url: "https://example.com/final.png".into(),
        }),
    });
    turn.emit(ThreadStreamEvent::ItemDone { item: image })
        .await?;

    // An assistant message with every kind of citation.
    let annotations = vec![
        Annotation {
            kind: AnnotationTag::Annotation,
            source: url_source(),
            index: Some(5),
        },
        Annotation {
            kind: AnnotationTag::Annotation,
            source: source(
                "report.pdf",
                SourceKind::File {
                    filename: "report.pdf".into(),
                },
            ),
            index: None,
        },
        Annotation {
            kind: AnnotationTag::Annotation,
            source: source(
                "Task 7",
                SourceKind::Entity {
                    id: "task_7".into(),
                    icon: Some("check".into()),
                    label: Some("Task".into()),
                    inline_label: None,
                    interactive: true,
                    data: json!({"priority": "high"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    preview: None,
                },
            ),
            index: Some(0),
        },
    ];
    let message = turn.new_item(
        IdKind::Message,
        ItemKind::AssistantMessage(AssistantMessage { content: vec![] }),
    );
    let message_id = message.id.clone();
    turn.emit(ThreadStreamEvent::ItemAdded {
        item: message.clone(),
    })
    .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: message_id.clone(),
        update: ThreadItemUpdate::ContentPartAdded {
            content_index: 0,
            content: AssistantMessageContent::text(""),
        },
    })
    .await?;
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: message_id.clone(),
        update: ThreadItemUpdate::TextDelta {
            content_index: 0,
            delta: "Cited.".into(),
        },
    })
    .await?;
    for (index, annotation) in annotations.iter().enumerate() {
        turn.emit(ThreadStreamEvent::ItemUpdated {
            item_id: message_id.clone(),
            update: ThreadItemUpdate::AnnotationAdded {
                content_index: 0,
                annotation_index: index,
                annotation: annotation.clone(),
            },
        })
        .await?;
    }
    let content = AssistantMessageContent {
        annotations,
        ..AssistantMessageContent::text("Cited.")
    };
    turn.emit(ThreadStreamEvent::ItemUpdated {
        item_id: message_id,
        update: ThreadItemUpdate::ContentPartDone {
            content_index: 0,
            content: content.clone(),
        },
    })
    .await?;
    let done = ThreadItem {
        created_at: Timestamp::now(),
        kind: ItemKind::AssistantMessage(AssistantMessage {
            content: vec![content],
        }),
        ..message
    };
    turn.emit(ThreadStreamEvent::ItemDone { item: done.clone() })
        .await?;

    // Hidden context is persisted, never sent.
    let hidden = turn.new_item(
        IdKind::Message,
        ItemKind::HiddenContextItem(HiddenContext {
            content: Some(json!("secret")),
        }),
    );
    turn.emit(ThreadStreamEvent::ItemDone { item: hidden })
        .await?;

    let temp = turn.new_item(
        IdKind::Task,
        ItemKind::Task(TaskItem {
            task: Task::custom(StatusIndicator::None, "tmp", None),
        }),
    );
    let temp_id = temp.id.clone();
    turn.emit(ThreadStreamEvent::ItemDone { item: temp })
        .await?;
    turn.emit(ThreadStreamEvent::ItemRemoved { item_id: temp_id })
        .await?;
    let edited = ThreadItem {
        kind: ItemKind::AssistantMessage(AssistantMessage {
            content: vec![AssistantMessageContent::text("Cited (edited).")],
        }),
        ..done
    };
    turn.emit(ThreadStreamEvent::ItemReplaced { item: edited })
        .await?;
    let end = turn.new_item(IdKind::Message, ItemKind::EndOfTurn);
    turn.emit(ThreadStreamEvent::ItemDone { item: end }).await?;

    let thread = turn.thread_mut();
    thread.title = Some("Everything".into());
    thread.status = ThreadStatus::Locked {
        reason: Some("Escalated".into()),
    };
    thread.allowed_image_domains = Some(vec!["example.com".into()]);
    Ok(())
}

#[async_trait]
impl Responder for Showcase {
    async fn respond(&self, turn: &mut Turn, input: Option<&ThreadItem>) -> Result<()> {
        let text = match input.map(|item| &item.kind) {
            Some(ItemKind::UserMessage(message)) => message.text(),
            _ => return stream_text(turn, "continued").await,
        };
        match text.as_str() {
            "everything" => every_item_kind(turn).await,
            "fail" => Err(Error::storage("connection reset")),
            "hold" => {
                HOLD.notified().await;
                stream_text(turn, "released").await
            }
            "custom fail" => Err(Error::Custom {
                message: "Quota exceeded, try tomorrow.".into(),
                allow_retry: false,
            }),
            "client tool" => {
                let call = turn.new_item(
                    IdKind::ToolCall,
                    ItemKind::ClientToolCall(ClientToolCall {
                        status: ClientToolCallStatus::Pending,
                        call_id: "call_c1".into(),
                        name: "get_selection".into(),
                        arguments: json!({"scope": "page", "none": null}),
                        output: None,
                    }),
                );
                turn.emit(ThreadStreamEvent::ItemDone { item: call }).await
            }
            "form" => {
                let form = turn.new_item(
                    IdKind::Message,
                    ItemKind::StructuredInput(StructuredInputItem {
                        status: StructuredInputStatus::Pending,
                        inputs: vec![
                            StructuredInput {
                                id: "priority".into(),
                                question: "Priority?".into(),
                                answer: None,
                                kind: StructuredInputKind::MultipleChoice {
                                    options: vec![
                                        ChoiceOption {
                                            value: "Low".into(),
                                        },
                                        ChoiceOption {
                                            value: "High".into(),
                                        },
                                    ],
                                    multiple: false,
                                },
                            },
                            StructuredInput {
                                id: "notes".into(),
                                question: "Notes?".into(),
                                answer: None,
                                kind: StructuredInputKind::Freeform {
                                    description: Some("Optional".into()),
                                },
                            },
                        ],
                    }),
                );
                turn.emit(ThreadStreamEvent::ItemDone { item: form }).await
            }
            "widget" => {
                let widget = turn.new_item(
                    IdKind::Message,
                    ItemKind::Widget(WidgetItem {
                        widget: json!({"type":"Card","children":[{"type":"Text","value":"Click me"}]}),
                        copy_text: None,
                    }),
                );
                turn.emit(ThreadStreamEvent::ItemDone { item: widget })
                    .await
            }
            other => stream_text(turn, other).await,
        }
    }

    async fn action(
        &self,
        turn: &mut Turn,
        action: &Action,
        _sender: Option<&ThreadItem>,
    ) -> Result<()> {
        stream_text(turn, &format!("action {}", action.kind)).await
    }

    async fn sync_action(
        &self,
        _thread: &ThreadMetadata,
        _action: &Action,
        sender: Option<&ThreadItem>,
        _ctx: &RequestContext,
    ) -> Result<Option<ThreadItem>> {
        Ok(sender.cloned().map(|mut item| {
            if let ItemKind::Widget(widget) = &mut item.kind {
                widget.copy_text = Some("clicked".into());
            }
            item
        }))
    }

    async fn transcribe(
        &self,
        audio: &[u8],
        media_type: &str,
        _ctx: &RequestContext,
    ) -> Result<String> {
        Ok(format!("{} bytes of {media_type}", audio.len()))
    }
}

struct Dump {
    engine: ChatEngine,
    out: Vec<Value>,
}

impl Dump {
    fn line(&mut self, case: &str, request_type: Option<&str>, schema: &str, json_text: String) {
        self.out.push(json!({"case": case, "request_type": request_type, "schema": schema, "json": json_text}));
    }

    /// Runs a streaming request; records every event and the whole SSE body.
    async fn stream(&mut self, case: &str, body: Value) -> Result<Vec<Value>> {
        let request_type = body["type"].as_str().map(str::to_owned);
        let Response::Stream(stream) = self
            .engine
            .process(body.to_string().as_bytes(), RequestContext::new("alice"))
            .await?
        else {
            return Err(Error::Internal(format!("{case} did not stream")));
        };
        let mut frames = stream.sse();
        let mut sse_body = String::new();
        let mut events = Vec::new();
        while let Some(frame) = frames.next_frame().await {
            let text = String::from_utf8_lossy(&frame).into_owned();
            let event_json = text
                .trim_start_matches("data: ")
                .trim_end_matches('\n')
                .to_owned();
            events.push(
                serde_json::from_str(&event_json).map_err(|e| Error::Internal(e.to_string()))?,
            );
            self.line(
                case,
                request_type.as_deref(),
                "ThreadStreamEvent",
                event_json,
            );
            sse_body.push_str(&text);
        }
        self.line(case, request_type.as_deref(), "SseBody", sse_body);
        Ok(events)
    }

    async fn json(&mut self, case: &str, schema: &str, body: Value) -> Result<Value> {
        let request_type = body["type"].as_str().map(str::to_owned);
        let Response::Json(bytes) = self
            .engine
            .process(body.to_string().as_bytes(), RequestContext::new("alice"))
            .await?
        else {
            return Err(Error::Internal(format!("{case} streamed")));
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let value = serde_json::from_str(&text).map_err(|e| Error::Internal(e.to_string()))?;
        self.line(case, request_type.as_deref(), schema, text);
        Ok(value)
    }
}

fn create(text: &str) -> Value {
    json!({"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":text}],"attachments":[],"inference_options":{}}}})
}

fn add(thread_id: &str, text: &str) -> Value {
    json!({"type":"threads.add_user_message","params":{"thread_id":thread_id,"input":{"content":[{"type":"input_text","text":text},{"type":"input_tag","id":"task_7","text":"Buy milk","data":{"k":null},"group":"Tasks","interactive":true}],"attachments":[],"quoted_text":"the chart","inference_options":{"tool_choice":{"id":"tasks"},"model":"mimo-v2-flash"}}}})
}

fn id_of(event: &Value, key: &str) -> String {
    event[key]["id"].as_str().unwrap_or_default().to_owned()
}

async fn run(path: &str) -> Result<()> {
    let engine = ChatEngine::builder()
        .store(SqliteStore::in_memory().await?)
        .responder(Showcase)
        .attachment_store(UploadUrls::new("https://files.example.com/attachments"))
        .build()?;
    let mut dump = Dump {
        engine,
        out: Vec::new(),
    };

    let everything = dump
        .stream("every event kind", create("everything"))
        .await?;
    let thread_id = id_of(&everything[0], "thread");
    dump.stream(
        "add user message with tags and options",
        add(&thread_id, "hello"),
    )
    .await?;
    dump.stream("respond phase failure", create("fail")).await?;
    dump.stream("custom error", create("custom fail")).await?;

    // A second message while the thread still answers: the busy error event.
    let Response::Stream(mut held) = dump
        .engine
        .process(
            create("hold").to_string().as_bytes(),
            RequestContext::new("alice"),
        )
        .await?
    else {
        return Err(Error::Internal("the held turn did not stream".into()));
    };
    let held_thread = match held.next_event().await {
        Some(ThreadStreamEvent::ThreadCreated { thread }) => thread.id,
        other => return Err(Error::Internal(format!("held turn began with {other:?}"))),
    };
    let busy = dump
        .stream("busy thread", add(&held_thread, "again"))
        .await?;
    if busy.len() != 1 || busy[0]["reason"] != "thread_busy" {
        return Err(Error::Internal(format!("no busy error event: {busy:?}")));
    }
    HOLD.notify_one();
    held.collect_events().await;

    let tool = dump
        .stream("client tool call", create("client tool"))
        .await?;
    let tool_thread = id_of(&tool[0], "thread");
    dump.stream(
        "client tool output",
        json!({"type":"threads.add_client_tool_output","params":{"thread_id":tool_thread,"result":{"nodes":3}}}),
    )
    .await?;

    let form = dump.stream("structured input form", create("form")).await?;
    let form_thread = id_of(&form[0], "thread");
    let form_id = form.last().map(|e| id_of(e, "item")).unwrap_or_default();
    dump.stream(
        "structured input answered",
        json!({"type":"threads.add_structured_input","params":{"thread_id":form_thread,"item_id":form_id,"input":{"status":"answered","answers":{"priority":{"values":["High","Low"]}}}}}),
    )
    .await?;

    let widget = dump.stream("widget", create("widget")).await?;
    let widget_thread = id_of(&widget[0], "thread");
    let widget_id = widget.last().map(|e| id_of(e, "item")).unwrap_or_default();
    dump.stream(
        "custom action",
        json!({"type":"threads.custom_action","params":{"thread_id":widget_thread,"item_id":widget_id,"action":{"type":"demo.click","payload":{"x":1}}}}),
    )
    .await?;
    dump.json(
        "sync custom action",
        "SyncCustomActionResponse",
        json!({"type":"threads.sync_custom_action","params":{"thread_id":widget_thread,"item_id":widget_id,"action":{"type":"demo.toggle"}}}),
    )
    .await?;
    dump.json(
        "sync custom action without sender",
        "SyncCustomActionResponse",
        json!({"type":"threads.sync_custom_action","params":{"thread_id":widget_thread,"action":{"type":"demo.toggle"}}}),
    )
    .await?;

    let user_message = everything
        .get(1)
        .map(|e| id_of(e, "item"))
        .unwrap_or_default();
    dump.stream(
        "retry after item",
        json!({"type":"threads.retry_after_item","params":{"thread_id":thread_id,"item_id":user_message}}),
    )
    .await?;

    dump.json(
        "get by id",
        "Thread",
        json!({"type":"threads.get_by_id","params":{"thread_id":widget_thread}}),
    )
    .await?;
    dump.json(
        "get locked thread",
        "Thread",
        json!({"type":"threads.get_by_id","params":{"thread_id":thread_id}}),
    )
    .await?;
    dump.json(
        "list threads",
        "Page[Thread]",
        json!({"type":"threads.list","params":{"limit":2,"order":"desc"}}),
    )
    .await?;
    dump.json(
        "list threads asc",
        "Page[Thread]",
        json!({"type":"threads.list","params":{"order":"asc"}}),
    )
    .await?;
    dump.json(
        "list items",
        "Page[ThreadItem]",
        json!({"type":"items.list","params":{"thread_id":widget_thread,"limit":2,"order":"asc"}}),
    )
    .await?;
    dump.json("update thread", "Thread", json!({"type":"threads.update","params":{"thread_id":widget_thread,"title":"Renamed ٹاسک"}})).await?;
    dump.json(
        "feedback",
        "Empty",
        json!({"type":"items.feedback","params":{"thread_id":widget_thread,"item_ids":[widget_id],"kind":"positive"}}),
    )
    .await?;
    let image = dump
        .json("image attachment", "Attachment", json!({"type":"attachments.create","params":{"name":"cat.png","size":1234,"mime_type":"image/png"}}))
        .await?;
    dump.json("file attachment", "Attachment", json!({"type":"attachments.create","params":{"name":"doc.pdf","size":99,"mime_type":"application/pdf"}}))
        .await?;
    let image_id = image["id"].as_str().unwrap_or_default().to_owned();
    dump.stream(
        "message with an attachment",
        json!({"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"see pic"}],"attachments":[image_id],"inference_options":{}}}}),
    )
    .await?;
    dump.json(
        "delete attachment",
        "Empty",
        json!({"type":"attachments.delete","params":{"attachment_id":image_id}}),
    )
    .await?;
    dump.json(
        "transcribe",
        "TranscriptionResult",
        json!({"type":"input.transcribe","params":{"audio_base64":"YWJj","mime_type":"audio/webm;codecs=opus"}}),
    )
    .await?;
    dump.json(
        "delete thread",
        "Empty",
        json!({"type":"threads.delete","params":{"thread_id":form_thread}}),
    )
    .await?;

    todo_widgets(&mut dump).await?;

    let mut file = std::fs::File::create(path)
        .map_err(|e| Error::Internal(format!("cannot create {path}: {e}")))?;
    for line in &dump.out {
        let text = json::to_string(line).map_err(|e| Error::Internal(e.to_string()))?;
        writeln!(file, "{text}").map_err(|e| Error::Internal(e.to_string()))?;
    }
    println!("wrote {} lines to {path}", dump.out.len());
    Ok(())
}

/// The to-do assistant's widgets, actions and client effects (every widget
/// component it uses), with the offline model.
async fn todo_widgets(dump: &mut Dump) -> Result<()> {
    let config = chatkit_engine::EngineConfig {
        database_url: "sqlite::memory:".into(),
        ..chatkit_engine::EngineConfig::default()
    };
    let app = chatkit_engine::todo::App::from_config(config).await?;
    dump.engine = app.engine;
    let created = dump
        .stream(
            "task card and tasks_changed effect",
            create("add a high priority task to buy milk due 2030-01-02"),
        )
        .await?;
    let thread_id = id_of(&created[0], "thread");
    dump.stream(
        "second task",
        add_text(&thread_id, "add a task to call mom"),
    )
    .await?;
    let listed = dump
        .stream("task list widget", add_text(&thread_id, "show my tasks"))
        .await?;
    let list = listed
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["type"] == "widget")
        .map(|e| e["item"].clone())
        .ok_or_else(|| Error::Internal("no task list widget".into()))?;
    let list_id = list["id"].as_str().unwrap_or_default().to_owned();
    let first = list["widget"]["children"][0]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let act = |kind: &str, task: &str| json!({"type":"threads.custom_action","params":{"thread_id":thread_id,"item_id":list_id,"action":{"type":kind,"payload":{"task_id":task}}}});
    dump.stream("task toggle action", act("tasks.toggle", &first))
        .await?;
    // Edit in place: the row becomes a form; the submitted form saves it.
    let mut edit = act("tasks.edit", &first);
    edit["type"] = json!("threads.sync_custom_action");
    dump.json("task edit form", "SyncCustomActionResponse", edit)
        .await?;
    let mut save = act("tasks.edit_save", &first);
    save["params"]["action"]["payload"] = json!({"task_id": first, "title": "buy oat milk",
        "priority": "low", "category": "home", "due_date": "2030-01-03"});
    dump.stream("task edit saved", save).await?;
    let mut ask = act("tasks.delete", &first);
    ask["type"] = json!("threads.sync_custom_action");
    dump.json(
        "task delete asked in place",
        "SyncCustomActionResponse",
        ask,
    )
    .await?;
    dump.stream("task delete confirmed", act("tasks.delete_confirm", &first))
        .await?;
    dump.stream(
        "task stats card",
        add_text(&thread_id, "how many tasks do I have?"),
    )
    .await?;
    // A delete by chat waits on a confirmation card; Confirm resumes the run.
    let asked = dump
        .stream(
            "task delete confirmation card",
            add_text(&thread_id, "delete buy milk"),
        )
        .await?;
    let card = asked
        .iter()
        .find(|e| e["type"] == "thread.item.done" && e["item"]["widget"]["confirm"].is_object())
        .map(|e| e["item"].clone())
        .ok_or_else(|| Error::Internal("no confirmation card".into()))?;
    dump.stream(
        "task delete confirmed by card",
        json!({"type":"threads.custom_action","params":{"thread_id":thread_id,"item_id":card["id"],"action":card["widget"]["confirm"]["action"]}}),
    )
    .await?;
    Ok(())
}

fn add_text(thread_id: &str, text: &str) -> Value {
    json!({"type":"threads.add_user_message","params":{"thread_id":thread_id,"input":{"content":[{"type":"input_text","text":text}],"attachments":[],"inference_options":{}}}})
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conformance.jsonl".into());
    if let Err(err) = run(&path).await {
        eprintln!("conformance dump failed: {err}");
        std::process::exit(1);
    }
}
