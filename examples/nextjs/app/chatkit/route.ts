// ChatKit at /chatkit too: the same handler as /api/chatkit, for clients
// configured with the engine's own path. (Route segment options must be
// literal in each route file, so they are repeated here.)
export { POST } from "../api/chatkit/route";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";
