"""asyncio API of Once, on ``redis.asyncio``: ``Once`` (the sync client's methods, awaitable) and ``Worker``.

    import asyncio, redis.asyncio
    from once.aio import Once

    async def handle(data):
        print("processing", data)

    async def main():
        once = Once(redis.asyncio.Redis(), "tasks")
        await once.push("hello")
        await once.worker(handle, concurrency=20)     # until SIGINT/SIGTERM, once.stop() or a cancel

    asyncio.run(main())
"""
from ..client import FlowJob, QueuedId
from ..errors import WrongTypeError
from ..types import Dep, Job, PermanentError, Stats
from ..worker import WorkerSummary
from .client import Once
from .worker import Worker

__all__ = ["Dep", "FlowJob", "Job", "Once", "PermanentError", "QueuedId", "Stats", "Worker", "WorkerSummary",
           "WrongTypeError"]
