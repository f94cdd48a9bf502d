"""Python client of Once, a job queue that lives inside Redis as a module.

    import redis
    from once import Once

    once = Once(redis.Redis(), 'tasks')
    once.push('hello')
    once.worker(execute_task, error_handler, monitor_handler)

``once.register(redis_client)`` makes the ONCE.* commands return these typed values in pipelines too.
"""
from .callbacks import register
from .client import DurabilityError, Once
from .errors import WrongTypeError
from .types import Event, GroupInfo, Job, JobInfo, PermanentError, Schedule, Stats, error_text
from .worker import Worker, WorkerSummary

__version__ = "0.1.0"
__all__ = ["DurabilityError", "Event", "GroupInfo", "Job", "JobInfo", "Once", "PermanentError", "Schedule", "Stats",
           "Worker", "WorkerSummary", "WrongTypeError", "__version__", "error_text", "register"]
