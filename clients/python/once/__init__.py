"""Python client of Once, a job queue that lives inside Redis as a module.

    import redis
    from once import Once

    once = Once(redis.Redis(), 'tasks')
    once.push('hello')
    once.worker(execute_task, error_handler, monitor_handler)    # execute_task's return value: the job's result

    once.push('hi').result(timeout=10).text     # a producer that waits for the outcome (Result)
    once.call('hi', timeout=10)                 # the same in one round trip (ONCE.CALL)

``once.register(redis_client)`` makes the ONCE.* commands return these typed values in pipelines too.
"""
from .callbacks import register
from .client import DurabilityError, Once, Pushed
from .errors import WrongTypeError
from .types import Event, GroupInfo, Job, JobInfo, PermanentError, Result, Schedule, Stats, error_text
from .worker import Worker, WorkerSummary

__version__ = "0.1.0"
__all__ = ["DurabilityError", "Event", "GroupInfo", "Job", "JobInfo", "Once", "PermanentError", "Pushed", "Result",
           "Schedule", "Stats", "Worker", "WorkerSummary", "WrongTypeError", "__version__", "error_text", "register"]
