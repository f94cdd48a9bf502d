"""Python client of Once, a job queue that lives inside Redis as a module.

    import redis
    from once import Once

    once = Once(redis.Redis(), 'tasks')
    once.push('hello')
    once.worker(execute_task, error_handler, monitor_handler)    # execute_task's return value: the job's result

    once.push('hi').result(timeout=10).text     # a producer that waits for the outcome (Result)
    once.call('hi', timeout=10)                 # the same in one round trip (ONCE.CALL)

    resized = once.push('resize a.png')
    once.push('upload a.png', after=[resized])  # waits until the resize completed (flows: after=, flow(FlowJob))

``once.register(redis_client)`` makes the ONCE.* commands return these typed values in pipelines too.
"""
from .callbacks import register
from .client import DurabilityError, FlowJob, Once, Pushed, QueuedId
from .errors import WrongTypeError
from .types import Dep, Event, GroupInfo, Job, JobInfo, PermanentError, Result, Schedule, Stats, error_text
from .worker import Worker, WorkerSummary

__version__ = "0.1.0"
__all__ = ["Dep", "DurabilityError", "Event", "FlowJob", "GroupInfo", "Job", "JobInfo", "Once", "PermanentError",
           "Pushed", "QueuedId", "Result", "Schedule", "Stats", "Worker", "WorkerSummary", "WrongTypeError",
           "__version__", "error_text", "register"]
