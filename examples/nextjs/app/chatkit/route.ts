// ChatKit at /chatkit too, as an App Router route handler: the web
// `Request`/`Response` form of the same endpoint (`engine.handle(request)`),
// for apps that keep every route in `app/`. It answers exactly what
// /api/chatkit (`pages/api/chatkit.ts`) answers; that one costs less CPU
// per turn (see its header).
import { getEngine, demoUser } from "../../lib/engine";

// A native addon: the Node.js runtime, never the Edge runtime.
export const runtime = "nodejs";
export const dynamic = "force-dynamic";

export async function POST(request: Request): Promise<Response> {
  const engine = await getEngine();
  return engine.handle(request, { context: demoUser() });
}
