"""Processes the tasks of the Once queue 'tasks' (see task_producer.py), printing the queue size now and then.

    python examples/task_consumer.py [HOST [PORT]]

HOST and PORT default to $ONCE_HOST / $ONCE_PORT, else localhost:6379. Ctrl-C (or SIGTERM) lets the task in hand
finish, then exits.
"""
import os
import sys

import redis

try:
    from once import Once
except ImportError:  # run from a checkout without `pip install ./clients/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
    from once import Once


def execute_task(data):
    print(f"Processing task: {data}")


def error_handler(task, exception):
    print(f"Task {task.id} failed: {exception}")


def monitor_handler(stats):
    print(f"Queue size: {stats.items_waiting}")


host = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ONCE_HOST", "localhost")
port = int(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("ONCE_PORT", "6379"))
redis_client = redis.Redis(host=host, port=port)

once = Once(redis_client, 'tasks')
once.worker(execute_task, error_handler, monitor_handler)
