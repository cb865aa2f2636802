// The ChatKit backend of this app: every ChatKit request is a POST here.
// The engine verifies `Authorization: Bearer <JWT>` (Better Auth's JWKS or an
// HS256 secret), then answers with JSON or a `text/event-stream`; errors are
// `{"error":{"code","message"}}` with their HTTP status. A client that goes
// away cancels the turn (the partial answer is kept).
import { getEngine, demoUser } from "../../../lib/engine";

// A native addon: the Node.js runtime, never the Edge runtime.
export const runtime = "nodejs";
export const dynamic = "force-dynamic";

export async function POST(request: Request): Promise<Response> {
  const engine = await getEngine();
  return engine.handle(request, { context: demoUser() });
}
