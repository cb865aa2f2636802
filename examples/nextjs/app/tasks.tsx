"use client";

// The task list beside the chat. It loads /api/tasks, and `refreshKey`
// changes whenever the chat says tasks changed (ChatKit's `onEffect` with a
// `tasks_changed` effect, sent after every tool call or widget action that
// changed tasks), so the list follows the assistant without polling.
import { useEffect, useState } from "react";

interface Task {
  id: string;
  title: string;
  completed: boolean;
  priority: string;
}

export default function Tasks({
  refreshKey,
  fetcher,
}: {
  refreshKey: number;
  fetcher: typeof fetch;
}) {
  const [tasks, setTasks] = useState<Task[] | null>(null);
  useEffect(() => {
    let live = true;
    fetcher("/api/tasks")
      .then((response) => (response.ok ? response.json() : null))
      .then((result: { data?: Task[] } | null) => {
        if (live) setTasks(result?.data ?? []);
      })
      .catch(() => live && setTasks([]));
    return () => {
      live = false;
    };
  }, [refreshKey, fetcher]);

  return (
    <aside className="tasks" aria-label="Your tasks">
      <h2>Your tasks</h2>
      {tasks === null ? (
        <p>Loading…</p>
      ) : tasks.length === 0 ? (
        <p>No tasks yet.</p>
      ) : (
        <ul>
          {tasks.map((task) => (
            <li key={task.id} data-done={task.completed}>
              {task.completed ? "✓ " : "○ "}
              {task.title} <small>{task.priority}</small>
            </li>
          ))}
        </ul>
      )}
    </aside>
  );
}
