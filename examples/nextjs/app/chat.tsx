"use client";

// The ChatKit web component, pointed at this app's /api/chatkit route.
//
// ChatKit's UI is a web component that OpenAI serves from its CDN, so this
// page loads that script at run time (it is not part of `next build`, and
// it needs network access in the browser). `domainKey` is the key of the
// domain registered in the OpenAI dashboard (any value works on localhost).
//
// Every request carries `Authorization: Bearer <JWT>`: with Better Auth's
// JWT plugin the token comes from `/api/auth/token`. Without that endpoint
// (development with CHATKIT_DEMO_USER) no header is sent.
import Script from "next/script";
import { useState } from "react";
import { ChatKit, useChatKit } from "@openai/chatkit-react";
import Tasks from "./tasks";

const CHATKIT_SCRIPT = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js";

async function bearerToken(): Promise<string | null> {
  try {
    const response = await fetch("/api/auth/token", { credentials: "include" });
    if (!response.ok) return null;
    const { token } = (await response.json()) as { token?: string };
    return token ?? null;
  } catch {
    return null;
  }
}

const authorizedFetch: typeof fetch = async (input, init) => {
  const headers = new Headers(init?.headers);
  const token = await bearerToken();
  if (token) headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

export default function Chat() {
  // Bumped by the engine's `tasks_changed` client effect: the list reloads.
  const [tasksVersion, setTasksVersion] = useState(0);
  const { control } = useChatKit({
    onEffect: ({ name }) => {
      if (name === "tasks_changed") setTasksVersion((version) => version + 1);
    },
    api: {
      url: "/api/chatkit",
      domainKey: process.env.NEXT_PUBLIC_CHATKIT_DOMAIN_KEY ?? "local-dev",
      fetch: authorizedFetch,
    },
    startScreen: {
      greeting: "What should we get done today?",
      prompts: [
        { label: "Add a task", prompt: "add a task to buy milk" },
        { label: "My tasks", prompt: "show my tasks" },
        { label: "Stats", prompt: "how many tasks do I have?" },
      ],
    },
  });

  return (
    <>
      <Script src={CHATKIT_SCRIPT} strategy="afterInteractive" />
      <div className="layout">
        <ChatKit control={control} className="chat" />
        <Tasks refreshKey={tasksVersion} fetcher={authorizedFetch} />
      </div>
    </>
  );
}
