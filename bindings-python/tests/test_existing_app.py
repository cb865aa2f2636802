"""A FastAPI app shaped like the existing to-do app: its own SQLModel `Task`
model on its own `tasks` table (the SQLModel migration's shape: UUID id, naive
UTC timestamps, no defaults) and its own `/api/{user_id}/tasks` routes written
with SQLModel, with the engine mounted at `/api/chatkit` on the same
PostgreSQL database. A task created through the chat appears in the app's own
REST list, and one created through REST is listed by the chat."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import List, Optional

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Column, DateTime, String
from sqlmodel import Field, Session, SQLModel, create_engine, select

import chatkit_engine as ce
from conftest import JWT_SECRET, add_message, bearer, create_thread, parse_sse


class Task(SQLModel, table=True):
    __tablename__ = "tasks"

    id: uuid.UUID = Field(primary_key=True)
    title: str = Field(max_length=255)
    description: Optional[str] = None
    priority: str = Field(index=True)
    category: str = Field(index=True)
    status: str = Field(index=True)
    completed: bool
    dueDate: Optional[datetime] = Field(default=None, sa_column=Column("dueDate", DateTime, index=True))
    createdAt: datetime = Field(sa_column=Column("createdAt", DateTime, nullable=False))
    updatedAt: datetime = Field(sa_column=Column("updatedAt", DateTime, nullable=False))
    userId: str = Field(sa_column=Column("userId", String, nullable=False, index=True))


class TaskIn(SQLModel):
    title: str
    priority: str = "medium"
    category: str = "other"


def existing_app(db_url: str, engine: ce.ChatEngine) -> FastAPI:
    sql = create_engine(db_url.replace("postgres://", "postgresql+psycopg://", 1))
    SQLModel.metadata.create_all(sql)
    app = FastAPI()

    @app.get("/api/{user_id}/tasks")
    def list_tasks(user_id: str) -> List[Task]:
        with Session(sql) as session:
            return list(session.exec(select(Task).where(Task.userId == user_id).order_by(Task.createdAt)))

    @app.post("/api/{user_id}/tasks", status_code=201)
    def create_task(user_id: str, body: TaskIn) -> Task:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        task = Task(
            id=uuid.uuid4(), title=body.title, priority=body.priority, category=body.category,
            status="pending", completed=False, createdAt=now, updatedAt=now, userId=user_id,
        )
        with Session(sql) as session:
            session.add(task)
            session.commit()
            session.refresh(task)
            return task

    @app.post("/api/chatkit")
    async def chatkit(request: Request) -> Response:
        ctx = await engine.authenticate(request.headers.get("authorization"))
        result = await engine.process(await request.body(), ctx)
        if result.streaming:
            return StreamingResponse(result, media_type="text/event-stream")
        return Response(result.json, media_type="application/json")

    return app


async def test_the_engine_mounted_in_an_existing_sqlmodel_app_shares_its_tasks(postgres_url: str) -> None:
    # The app's table exists first, made by the app itself.
    engine_first = create_engine(postgres_url.replace("postgres://", "postgresql+psycopg://", 1))
    SQLModel.metadata.create_all(engine_first)
    engine = ce.ChatEngine(database_url=postgres_url, jwt_secret=JWT_SECRET)
    app = existing_app(postgres_url, engine)
    alice = bearer("alice")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        reply = await client.post("/api/chatkit", content=create_thread("add a task to buy milk"), headers=alice)
        assert reply.status_code == 200
        thread_id = parse_sse(reply.content)[0]["thread"]["id"]

        listed = (await client.get("/api/alice/tasks")).json()
        assert [(t["title"], t["status"], t["completed"]) for t in listed] == [("buy milk", "pending", False)]

        made = await client.post("/api/alice/tasks", json={"title": "Call mom", "priority": "high"})
        assert made.status_code == 201
        reply = await client.post("/api/chatkit", content=add_message(thread_id, "show my tasks"), headers=alice)
        assert "Call mom" in reply.text and "buy milk" in reply.text
    # The engine's tables are in their own schema, beside the app's.
    with engine_first.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT COUNT(*) FROM chatkit.chat_sessions")).scalar() == 1
    engine_first.dispose()
