"""A FastAPI app that embeds chatkit-engine.

    uvicorn app:app            # config from the environment: DATABASE_URL, JWT_SECRET or JWKS_URL, OPENAI_API_KEY ...

``POST /api/chatkit`` (the path the app's Next.js route forwards to) and
``POST /chatkit`` are the whole ChatKit backend; ``/api/{user_id}/tasks...`` are
the existing app's task routes over the same ``tasks`` table (through the
engine's task tools), so what the chat changes the UI lists and vice versa.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from starlette.routing import Route

from chatkit_engine import ChatEngine, ChatKitError, RequestContext
from chatkit_engine.asgi import ChatKitEndpoint


def create_app(engine: ChatEngine) -> FastAPI:
    app = FastAPI(title="Todo + ChatKit")
    app.state.engine = engine

    @app.exception_handler(ChatKitError)
    async def engine_error(_request: Request, err: ChatKitError) -> Response:
        return Response(err.body, status_code=err.http_status, media_type="application/json")

    # The ChatKit backend: a plain ASGI endpoint, routed by Starlette but
    # without FastAPI's request/response handling around it (less CPU per
    # turn; docs/performance.md). It verifies the Bearer token, reads the
    # body up to the engine's limit, and answers JSON, SSE or the error.
    chatkit = ChatKitEndpoint(engine)
    app.router.routes.extend(Route(path, chatkit, methods=["POST"]) for path in ("/api/chatkit", "/chatkit"))

    # --- task REST routes (Phase-II style: the token's user must own the path) ---

    async def owner(user_id: str, authorization: Optional[str] = Header(None)) -> RequestContext:
        ctx = await engine.authenticate(authorization)
        if ctx.user_id != user_id:
            raise HTTPException(status_code=403, detail="Access denied")
        return ctx

    async def run(tool: str, args: Dict[str, Any], ctx: RequestContext) -> Any:
        outcome = await engine.run_task_tool(tool, args, ctx)
        if outcome.get("success"):
            return outcome.get("data")
        error = str(outcome.get("error", "request failed"))
        raise HTTPException(status_code=404 if "not found" in error.lower() else 400, detail=error)

    @app.get("/api/{user_id}/tasks")
    async def list_tasks(
        ctx: RequestContext = Depends(owner),
        status: Optional[str] = None,
        priority: Optional[str] = None,
        category: Optional[str] = None,
        search: Optional[str] = None,
        sort_by: str = "createdAt",
        sort_order: str = "desc",
    ) -> Any:
        filters = {"status": status, "priority": priority, "category": category, "search": search}
        args = {k: v for k, v in filters.items() if v is not None}
        return await run("list_tasks", {**args, "sort_by": sort_by, "sort_order": sort_order}, ctx)

    @app.post("/api/{user_id}/tasks", status_code=201)
    async def create_task(body: Dict[str, Any], ctx: RequestContext = Depends(owner)) -> Any:
        return await run("create_task", body, ctx)

    @app.get("/api/{user_id}/tasks/{task_id}")
    async def get_task(task_id: str, ctx: RequestContext = Depends(owner)) -> Any:
        return await run("get_task", {"task_id": task_id}, ctx)

    @app.put("/api/{user_id}/tasks/{task_id}")
    async def update_task(task_id: str, body: Dict[str, Any], ctx: RequestContext = Depends(owner)) -> Any:
        return await run("update_task", {**body, "task_id": task_id}, ctx)

    @app.delete("/api/{user_id}/tasks/{task_id}", status_code=204)
    async def delete_task(task_id: str, ctx: RequestContext = Depends(owner)) -> Response:
        await run("delete_task", {"task_id": task_id}, ctx)
        return Response(status_code=204)

    @app.patch("/api/{user_id}/tasks/{task_id}/complete")
    async def toggle_complete(task_id: str, ctx: RequestContext = Depends(owner)) -> Any:
        return await run("toggle_complete", {"task_id": task_id}, ctx)

    @app.get("/api/{user_id}/stats")
    async def stats(ctx: RequestContext = Depends(owner)) -> Any:
        return await run("get_stats", {}, ctx)

    return app


app = create_app(ChatEngine.from_env())
