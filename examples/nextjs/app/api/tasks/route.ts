// The caller's tasks, for the list beside the chat: the same table and rules
// the assistant's tools use (`runTaskTool("list_tasks")`), for the verified
// caller only. The page reloads it when the chat sends a `tasks_changed`
// client effect.
import { ChatKitError } from "chatkit-engine";
import { getEngine, demoUser } from "../../../lib/engine";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

export async function GET(request: Request): Promise<Response> {
  const engine = await getEngine();
  try {
    const context = demoUser() ?? (await engine.authenticate(request.headers.get("authorization")));
    const result = await engine.runTaskTool("list_tasks", { limit: 200 }, context);
    return Response.json(result);
  } catch (err) {
    if (err instanceof ChatKitError) return err.toResponse();
    throw err;
  }
}
