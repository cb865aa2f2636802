//! The offline model's rules for the to-do assistant.
//!
//! [`TaskRules`] is a [`Script`] for the generic
//! [`ScriptedModel`](crate::models::ScriptedModel): it is **not** a language
//! model. It recognises task requests in English, Urdu and Roman Urdu with
//! keyword rules, calls the task tools with the right arguments, and words an
//! answer from what the tools returned. With it the whole product runs with
//! no network and no API key; every place that uses it says so.
//!
//! | the user asks | it calls |
//! | --- | --- |
//! | add / create / remind me ... (Urdu: بنائیں, شامل; Roman: banao) | `create_task` with title, priority, category |
//! | show / list ... | `list_tasks` with status and search filters |
//! | complete / done / mark ... | `toggle_complete` (after `list_tasks` to find a task named by title) |
//! | delete / remove ... | `delete_task` (same lookup; the run pauses for the user's confirmation, and a declined delete is answered as not done) |
//! | a task mentioned with `@` (its id in the message) | the tool by that id, with no lookup |
//! | rename / change / set ... | `update_task` (same lookup) |
//! | how many / stats ... | `get_stats` |
//! | Urdu in either script, first call of a turn | `transfer_to_urdu_specialist` when offered |
//!
//! ```
//! # async fn demo() -> chatkit_engine::Result<()> {
//! use chatkit_engine::models::{ChatMessage, Model, ModelEvent, ModelRequest, ToolSpec};
//! use chatkit_engine::todo::offline_model;
//! use futures::StreamExt;
//! let create = ToolSpec { name: "create_task".into(), description: String::new(), parameters: serde_json::json!({}), strict: false };
//! let request = ModelRequest {
//!     messages: vec![ChatMessage::User { content: "add a task to buy milk".into() }],
//!     tools: vec![create].into(),
//!     ..ModelRequest::default()
//! };
//! let mut events = offline_model().stream(request).await?;
//! let Some(Ok(ModelEvent::Completed(response))) = events.next().await else { unreachable!() };
//! assert_eq!(response.tool_calls[0].name, "create_task");
//! assert_eq!(response.tool_calls[0].arguments, r#"{"title":"buy milk"}"#);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use super::language;
use crate::models::ToolCall;
use crate::models::scripted::{Conversation, Reply, Script};
use serde_json::{Value, json};

/// What the user asked for.
#[derive(Clone, Debug, PartialEq)]
enum Intent {
    Create,
    List,
    Complete,
    Delete,
    Update,
    Stats,
    Help,
}

const INTENT_WORDS: &[(Intent, &[&str])] = &[
    (
        Intent::Stats,
        &[
            "how many",
            "stats",
            "statistics",
            "summary",
            "progress",
            "کتنے",
            "کتنی",
            "اعداد",
            "خلاصہ",
            "kitne",
            "kitni",
        ],
    ),
    (
        Intent::Delete,
        &[
            "delete",
            "remove",
            "cancel",
            "drop",
            "حذف",
            "ڈیلیٹ",
            "ہٹا",
            "مٹا",
            "hatao",
            "mita",
        ],
    ),
    (
        Intent::Complete,
        &[
            "complete", "mark", "finish", "done", "tick", "toggle", "reopen", "مکمل", "mukammal",
        ],
    ),
    (
        Intent::Update,
        &[
            "rename",
            "change",
            "update",
            "edit",
            "set ",
            "تبدیل",
            "اپڈیٹ",
            "بدل",
            "badlo",
            "tabdeel",
        ],
    ),
    (
        Intent::Create,
        &[
            "add",
            "create",
            "new task",
            "remind me",
            "remember",
            "بنائیں",
            "بناؤ",
            "بنا دیں",
            "شامل",
            "banao",
            "bana do",
            "shamil",
        ],
    ),
    (
        Intent::List,
        &[
            "list",
            "show",
            "what",
            "display",
            "pending",
            "my tasks",
            "دکھا",
            "فہرست",
            "کون سے",
            "dikhao",
            "dikha",
        ],
    ),
];

fn intent_of(text: &str) -> Intent {
    let lower = text.to_lowercase();
    let mut best: Option<(usize, Intent)> = None;
    for (intent, words) in INTENT_WORDS {
        for word in *words {
            if let Some(at) = lower.find(word)
                && best.as_ref().is_none_or(|(best_at, _)| at < *best_at)
            {
                best = Some((at, intent.clone()));
            }
        }
    }
    best.map(|(_, intent)| intent).unwrap_or(Intent::Help)
}

/// Filler stripped from titles and task references.
const FILLER_PREFIXES: &[&str] = &[
    "please ",
    "can you ",
    "could you ",
    "add a new task to ",
    "add a task to ",
    "add a task called ",
    "add a task ",
    "add task ",
    "create a new task to ",
    "create a task to ",
    "create a task called ",
    "create a task ",
    "create task ",
    "new task: ",
    "new task ",
    "remind me to ",
    "remember to ",
    "add ",
    "create ",
    "mark the task ",
    "mark task ",
    "mark ",
    "complete the task ",
    "complete task ",
    "complete ",
    "finish the task ",
    "finish ",
    "delete the task ",
    "delete task ",
    "delete ",
    "remove the task ",
    "remove task ",
    "remove ",
    "the task ",
    "task ",
    "the ",
    "to ",
    "a ",
];
const FILLER_SUFFIXES: &[&str] = &[
    " as done",
    " as complete",
    " as completed",
    " as finished",
    " done",
    " task",
    " please",
    " for me",
    " to my list",
    " to my tasks",
    " from my list",
];
const URDU_FILLER: &[&str] = &[
    "براہ کرم",
    "نیا",
    "ایک",
    "ٹاسک",
    "کا",
    "کی",
    "کے",
    "کو",
    "میں",
    "میرا",
    "میرے",
    "والا",
    "والی",
    "کریں",
    "کرو",
    "کر",
    "دیں",
    "دو",
    "بنائیں",
    "بناؤ",
    "بنا",
    "شامل",
    "مکمل",
    "حذف",
    "ڈیلیٹ",
    "ہٹائیں",
    "ہٹا",
    "تبدیل",
    "اپڈیٹ",
    "ہے",
    "task",
    "ka",
    "ki",
    "ke",
    "ko",
    "ek",
    "naya",
    "mera",
    "mere",
    "karo",
    "kardo",
    "krdo",
    "banao",
    "bana",
    "do",
    "wala",
    "wali",
    "mukammal",
    "hatao",
    "shamil",
];

fn clean_reference(text: &str) -> String {
    let mut rest = text
        .trim()
        .trim_end_matches(['.', '!', '?', '۔', '؟'])
        .trim()
        .to_owned();
    if language::detect(&rest).is_urdu() {
        let kept: Vec<&str> = rest
            .split_whitespace()
            .filter(|word| !URDU_FILLER.contains(&word.to_lowercase().as_str()))
            .collect();
        return kept
            .join(" ")
            .trim_matches(['"', '\'', '“', '”'])
            .to_owned();
    }
    loop {
        let lower = rest.to_lowercase();
        let mut changed = false;
        for prefix in FILLER_PREFIXES {
            if lower.starts_with(prefix) {
                rest = rest[prefix.len()..].trim_start().to_owned();
                changed = true;
                break;
            }
        }
        let lower = rest.to_lowercase();
        for suffix in FILLER_SUFFIXES {
            if lower.ends_with(suffix) {
                rest = rest[..rest.len() - suffix.len()].trim_end().to_owned();
                changed = true;
                break;
            }
        }
        if !changed {
            break;
        }
    }
    rest.trim_matches(['"', '\'', '“', '”']).trim().to_owned()
}

/// Pulls `high/medium/low priority` out of a request.
fn take_priority(text: &str) -> (String, Option<&'static str>) {
    let lower = text.to_lowercase();
    for (level, phrases) in [
        (
            "high",
            &[
                "with high priority",
                "high priority",
                "priority high",
                "urgent",
                "اہم",
                "زیادہ ترجیح",
            ][..],
        ),
        (
            "low",
            &[
                "with low priority",
                "low priority",
                "priority low",
                "کم ترجیح",
            ][..],
        ),
        (
            "medium",
            &["with medium priority", "medium priority", "priority medium"][..],
        ),
    ] {
        for phrase in phrases {
            if let Some(at) = lower.find(phrase) {
                let mut rest = String::new();
                rest.push_str(&text[..at]);
                rest.push_str(&text[at + phrase.len()..]);
                return (
                    rest.split_whitespace().collect::<Vec<_>>().join(" "),
                    Some(level),
                );
            }
        }
    }
    (text.to_owned(), None)
}

fn find_uuid(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|token| token.len() == 36 && token.matches('-').count() == 4)
        .map(str::to_owned)
}

/// The request a user message makes, before any tool ran.
struct Plan {
    intent: Intent,
    /// A task id named in the message.
    task_id: Option<String>,
    /// A task named by (part of) its title.
    reference: String,
    /// New values for create/update.
    fields: Value,
}

fn plan(text: &str) -> Plan {
    let intent = intent_of(text);
    let task_id = find_uuid(text);
    let (without_priority, priority) = take_priority(text);
    let mut fields = json!({});
    let mut reference = String::new();
    match intent {
        Intent::Create => {
            fields["title"] = json!(clean_reference(&without_priority));
            if let Some(priority) = priority {
                fields["priority"] = json!(priority);
            }
        }
        Intent::Update => {
            let lower = without_priority.to_lowercase();
            if let Some(at) = lower.rfind(" to ") {
                let (left, right) = without_priority.split_at(at);
                let target = right[4..].trim();
                let left = strip_update_verbs(left);
                reference = clean_reference(&left);
                if priority.is_none()
                    && ["high", "medium", "low"].contains(&target.to_lowercase().as_str())
                {
                    fields["priority"] = json!(target.to_lowercase());
                } else if !target.is_empty() {
                    fields["title"] = json!(clean_reference(target));
                }
            } else {
                reference = clean_reference(&strip_update_verbs(&without_priority));
            }
            if let Some(priority) = priority {
                fields["priority"] = json!(priority);
            }
        }
        Intent::Complete | Intent::Delete => reference = clean_reference(text),
        Intent::List => {
            let lower = text.to_lowercase();
            if lower.contains("pending")
                || lower.contains("open")
                || text.contains("زیر التوا")
                || lower.contains("baqi")
            {
                fields["status"] = json!("pending");
            } else if lower.contains("completed")
                || lower.contains("finished")
                || text.contains("مکمل")
            {
                fields["status"] = json!("completed");
            }
        }
        Intent::Stats | Intent::Help => {}
    }
    Plan {
        intent,
        task_id,
        reference,
        fields,
    }
}

fn strip_update_verbs(text: &str) -> String {
    let mut rest = text.trim().to_owned();
    for verb in [
        "rename",
        "change the priority of",
        "change priority of",
        "set the priority of",
        "set priority of",
        "change",
        "update the title of",
        "update",
        "edit",
        "set",
    ] {
        if rest.to_lowercase().starts_with(verb) {
            rest = rest[verb.len()..].trim().to_owned();
            break;
        }
    }
    rest
}

/// The offline model's rules for the to-do assistant. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskRules;

impl Script for TaskRules {
    fn reply(&self, conversation: &Conversation<'_>) -> Reply {
        decide(conversation)
    }
}

/// What the model answers in `conversation`.
fn decide(conversation: &Conversation<'_>) -> Reply {
    let user_text = conversation.last_user_text();
    let urdu = language::detect(user_text).is_urdu()
        || conversation
            .system()
            .is_some_and(|s| s.contains("only in Urdu"));
    let calls_so_far = conversation.calls_since_user();
    let make_call = |name: &str, arguments: Value| Reply::call(name, arguments);
    let answer = Reply::Text;

    // Hand Urdu conversations to the specialist first, if this agent can.
    let handed_off = calls_so_far
        .iter()
        .any(|(call, _)| call.name.starts_with("transfer_to_"));
    if urdu
        && !handed_off
        && conversation.offers_tool("transfer_to_urdu_specialist")
        && calls_so_far.is_empty()
    {
        return make_call("transfer_to_urdu_specialist", json!({}));
    }
    let plan = plan(user_text);
    let words = Words { urdu };
    let actions: Vec<&(&ToolCall, Option<&str>)> = calls_so_far
        .iter()
        .filter(|(call, _)| !call.name.starts_with("transfer_to_"))
        .collect();

    let Some((last_call, last_output)) = actions.last() else {
        // Nothing ran yet for this message: pick the first tool.
        let by_id = |name: &str| {
            plan.task_id
                .as_ref()
                .map(|id| (name.to_owned(), json!({"task_id": id})))
        };
        let next = match plan.intent {
            Intent::Create if plan.fields["title"].as_str().is_some_and(|t| !t.is_empty()) => {
                Some(("create_task".to_owned(), plan.fields.clone()))
            }
            Intent::Create => return answer(words.ask_title()),
            Intent::List => Some(("list_tasks".to_owned(), plan.fields.clone())),
            Intent::Stats => Some(("get_stats".to_owned(), json!({}))),
            Intent::Complete => by_id("toggle_complete"),
            Intent::Delete => by_id("delete_task"),
            Intent::Update => plan.task_id.as_ref().map(|id| {
                let mut arguments = plan.fields.clone();
                arguments["task_id"] = json!(id);
                ("update_task".to_owned(), arguments)
            }),
            Intent::Help => return answer(words.help()),
        };
        let (name, arguments) = match next {
            Some(next) => next,
            // A task named by title: look it up first.
            None if !plan.reference.is_empty() => {
                ("list_tasks".to_owned(), json!({"search": plan.reference}))
            }
            None => return answer(words.ask_which()),
        };
        if !conversation.offers_tool(&name) {
            return answer(words.cannot());
        }
        return make_call(&name, arguments);
    };

    if *last_output == Some(crate::agents::DECLINED_OUTPUT) {
        return answer(words.declined());
    }
    let output: Value = last_output
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    if output["success"] == json!(false) || output.is_null() {
        let error = output["error"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| last_output.map(str::to_owned));
        return answer(words.failed(error.as_deref().unwrap_or("unknown error")));
    }
    let data = &output["data"];
    let follow_up = matches!(
        plan.intent,
        Intent::Complete | Intent::Delete | Intent::Update
    ) && last_call.name == "list_tasks"
        && plan.task_id.is_none();
    if follow_up {
        let matches = data.as_array().cloned().unwrap_or_default();
        return match matches.as_slice() {
            [] => answer(words.not_found(&plan.reference)),
            [task] => {
                let id = task["id"].clone();
                let (name, arguments) = match plan.intent {
                    Intent::Complete => ("toggle_complete", json!({"task_id": id})),
                    Intent::Delete => ("delete_task", json!({"task_id": id})),
                    _ => {
                        let mut arguments = plan.fields.clone();
                        arguments["task_id"] = id;
                        ("update_task", arguments)
                    }
                };
                make_call(name, arguments)
            }
            many => {
                let titles: Vec<String> = many
                    .iter()
                    .filter_map(|t| t["title"].as_str().map(str::to_owned))
                    .collect();
                answer(words.which_of(&plan.reference, &titles))
            }
        };
    }
    // Name the task of a delete from the lookup that preceded it.
    let looked_up_title = actions
        .iter()
        .filter(|(call, _)| call.name == "list_tasks")
        .filter_map(|(_, output)| output.and_then(|o| serde_json::from_str::<Value>(o).ok()))
        .find_map(|o| o["data"][0]["title"].as_str().map(str::to_owned));
    answer(words.report(&last_call.name, data, looked_up_title))
}

/// The model's phrasebook, in English or Urdu.
struct Words {
    urdu: bool,
}

impl Words {
    fn pick(&self, english: String, urdu: String) -> String {
        if self.urdu { urdu } else { english }
    }

    fn help(&self) -> String {
        self.pick(
            "I can add, list, update, complete and delete your tasks, and show your stats. Try \"add a task to buy milk\".".into(),
            "میں آپ کے ٹاسک بنا، دکھا، اپڈیٹ، مکمل اور حذف کر سکتا ہوں۔ مثال: \"دودھ خریدنے کا ٹاسک بنائیں\"".into(),
        )
    }

    fn ask_title(&self) -> String {
        self.pick(
            "What should the task be called?".into(),
            "ٹاسک کا نام کیا ہو؟".into(),
        )
    }

    fn ask_which(&self) -> String {
        self.pick(
            "Which task do you mean?".into(),
            "آپ کس ٹاسک کی بات کر رہے ہیں؟".into(),
        )
    }

    fn cannot(&self) -> String {
        self.pick(
            "I can't do that here.".into(),
            "میں یہ یہاں نہیں کر سکتا۔".into(),
        )
    }

    fn declined(&self) -> String {
        self.pick(
            "OK, I left it as it was: nothing was deleted or changed.".into(),
            "ٹھیک ہے، میں نے کچھ نہیں بدلا۔".into(),
        )
    }

    fn failed(&self, error: &str) -> String {
        self.pick(
            format!("Sorry, I couldn't do that: {error}."),
            format!("معذرت، یہ نہیں ہو سکا: {error}"),
        )
    }

    fn not_found(&self, reference: &str) -> String {
        self.pick(
            format!("I couldn't find a task matching \"{reference}\"."),
            format!("مجھے \"{reference}\" سے ملتا جلتا کوئی ٹاسک نہیں ملا۔"),
        )
    }

    fn which_of(&self, reference: &str, titles: &[String]) -> String {
        let list = titles
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.pick(
            format!("Several tasks match \"{reference}\": {list}. Which one do you mean?"),
            format!("\"{reference}\" سے کئی ٹاسک ملتے ہیں: {list}۔ آپ کون سا چاہتے ہیں؟"),
        )
    }

    fn status(&self, task: &Value) -> String {
        let done = task["completed"] == json!(true);
        match (self.urdu, done) {
            (false, true) => "completed".into(),
            (false, false) => "pending".into(),
            (true, true) => "مکمل".into(),
            (true, false) => "زیر التوا".into(),
        }
    }

    fn report(&self, tool: &str, data: &Value, looked_up_title: Option<String>) -> String {
        let title = data["title"]
            .as_str()
            .map(str::to_owned)
            .or(looked_up_title)
            .unwrap_or_default();
        match tool {
            "create_task" => self.pick(
                format!(
                    "Added \"{title}\" to your tasks ({} priority).",
                    data["priority"].as_str().unwrap_or("medium")
                ),
                format!("میں نے آپ کا ٹاسک \"{title}\" شامل کر دیا ہے۔"),
            ),
            "list_tasks" => {
                let tasks = data.as_array().cloned().unwrap_or_default();
                if tasks.is_empty() {
                    return self.pick(
                        "You have no tasks here yet.".into(),
                        "آپ کا کوئی ٹاسک نہیں ہے۔".into(),
                    );
                }
                let lines: Vec<String> = tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        format!(
                            "{}. {} — {}",
                            i + 1,
                            t["title"].as_str().unwrap_or_default(),
                            self.status(t)
                        )
                    })
                    .collect();
                self.pick(
                    format!("You have {} task(s):\n{}", tasks.len(), lines.join("\n")),
                    format!("آپ کے {} ٹاسک ہیں:\n{}", tasks.len(), lines.join("\n")),
                )
            }
            "get_task" => self.pick(
                format!(
                    "\"{title}\" is {} ({} priority).",
                    self.status(data),
                    data["priority"].as_str().unwrap_or("medium")
                ),
                format!("ٹاسک \"{title}\": {}", self.status(data)),
            ),
            "toggle_complete" if data["completed"] == json!(true) => self.pick(
                format!("Marked \"{title}\" as completed."),
                format!("ٹاسک \"{title}\" مکمل کر دیا گیا ہے۔"),
            ),
            "toggle_complete" => self.pick(
                format!("Marked \"{title}\" as pending again."),
                format!("ٹاسک \"{title}\" دوبارہ زیر التوا ہے۔"),
            ),
            "delete_task" => self.pick(
                if title.is_empty() {
                    "Deleted the task.".into()
                } else {
                    format!("Deleted \"{title}\".")
                },
                format!("ٹاسک \"{title}\" حذف کر دیا گیا ہے۔"),
            ),
            "update_task" => self.pick(
                format!("Updated \"{title}\"."),
                format!("ٹاسک \"{title}\" اپڈیٹ کر دیا گیا ہے۔"),
            ),
            "get_stats" => self.pick(
                format!(
                    "You have {} tasks: {} pending and {} completed.",
                    data["total"], data["pending"], data["completed"]
                ),
                format!(
                    "آپ کے کل {} ٹاسک ہیں: {} زیر التوا اور {} مکمل۔",
                    data["total"], data["pending"], data["completed"]
                ),
            ),
            other => self.pick(format!("Done ({other})."), format!("ہو گیا ({other})۔")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn understands_requests_in_english_and_urdu() {
        let p = plan("add a task to buy milk");
        assert_eq!(
            (p.intent, p.fields["title"].as_str()),
            (Intent::Create, Some("buy milk"))
        );
        let p = plan("Add a high priority task to call mom");
        assert_eq!(p.fields, json!({"title": "call mom", "priority": "high"}));
        let p = plan("mark buy milk as done");
        assert_eq!(
            (p.intent, p.reference.as_str()),
            (Intent::Complete, "buy milk")
        );
        let p = plan("delete the task buy milk");
        assert_eq!(
            (p.intent, p.reference.as_str()),
            (Intent::Delete, "buy milk")
        );
        let p = plan("rename buy milk to buy oat milk");
        assert_eq!(
            (p.intent, p.reference.as_str(), p.fields["title"].as_str()),
            (Intent::Update, "buy milk", Some("buy oat milk"))
        );
        let p = plan("set priority of buy milk to high");
        assert_eq!(
            (p.reference.as_str(), p.fields["priority"].as_str()),
            ("buy milk", Some("high"))
        );
        assert_eq!(
            plan("show my pending tasks").fields,
            json!({"status": "pending"})
        );
        assert_eq!(plan("how many tasks are done?").intent, Intent::Stats);
        assert_eq!(plan("hello").intent, Intent::Help);

        let p = plan("دودھ خریدنے کا ٹاسک بنائیں");
        assert_eq!(
            (p.intent, p.fields["title"].as_str()),
            (Intent::Create, Some("دودھ خریدنے"))
        );
        assert_eq!(plan("میرے ٹاسک دکھائیں").intent, Intent::List);
        let p = plan("دودھ خریدنے والا ٹاسک مکمل کریں");
        assert_eq!(
            (p.intent, p.reference.as_str()),
            (Intent::Complete, "دودھ خریدنے")
        );
        assert_eq!(
            plan("doodh lena ka task banao").fields["title"].as_str(),
            Some("doodh lena")
        );
        assert_eq!(plan("mere kitne task hain").intent, Intent::Stats);
    }

    #[test]
    fn names_a_task_by_id_when_the_message_has_one() {
        let p = plan("complete 3f2a9c1e-8d4b-4b7a-9e6f-1a2b3c4d5e6f");
        assert_eq!(
            p.task_id.as_deref(),
            Some("3f2a9c1e-8d4b-4b7a-9e6f-1a2b3c4d5e6f")
        );
    }
}
