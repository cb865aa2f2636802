// The ChatKit backend of this app: every ChatKit request is a POST here.
// A Pages Router API route (beside the App Router pages): Next.js hands it
// Node's own request and response, so the engine writes its SSE frames to
// the socket directly; per turn this costs about 1 ms of CPU less than the
// same engine in an App Router route handler (`app/chatkit/route.ts`), whose
// web Request/Response/ReadableStream wrapping Next.js adds on every request
// (docs/performance.md, "Embedded: FastAPI and Next.js").
//
// The engine verifies `Authorization: Bearer <JWT>` (Better Auth's JWKS or an
// HS256 secret), then answers with JSON or a `text/event-stream`; errors are
// `{"error":{"code","message"}}` with their HTTP status. A client that goes
// away cancels the turn (the partial answer is kept).
import type { NextApiRequest, NextApiResponse } from "next";
import { getEngine, demoUser } from "../../lib/engine";

export const config = {
  api: {
    // The engine reads the body itself (up to its own limit).
    bodyParser: false,
    // A long answer is a stream, not one response body to warn about.
    responseLimit: false,
  },
};

export default async function chatkit(request: NextApiRequest, response: NextApiResponse): Promise<void> {
  if (request.method !== "POST") {
    // What the App Router answers for a method a route does not export.
    response.setHeader("allow", "POST");
    response.status(405).end();
    return;
  }
  const engine = await getEngine();
  await engine.handleNode(request, response, { context: demoUser() });
}
