"""Pushes a task to the Once queue 'tasks' every second.

    python examples/task_producer.py [HOST [PORT]]

HOST and PORT default to $ONCE_HOST / $ONCE_PORT, else localhost:6379. Ctrl-C stops it.
"""
import os
import random
import sys
import time

import redis

try:
    from once import Once
except ImportError:  # run from a checkout without `pip install ./clients/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
    from once import Once

host = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ONCE_HOST", "localhost")
port = int(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("ONCE_PORT", "6379"))

redis_client = redis.Redis(host=host, port=port)
once = Once(redis_client, 'tasks')

try:
    while True:
        task = f"Task created at {time.strftime('%Y-%m-%d %H:%M:%S')}: {random.randint(0, 100)}"
        try:
            job_id = once.push(task)
            print(f"Pushed {job_id}: {task}")
        except redis.ConnectionError as e:
            print(f"Redis unavailable ({e}); retrying")
        time.sleep(1)
except KeyboardInterrupt:
    pass
