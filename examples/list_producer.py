"""The seed's producer, written for a plain Redis list: RPUSHes a task onto 'tasks' every second.

    python examples/list_producer.py [HOST [PORT]]

It is not changed for Once: the module turns an RPUSH onto a queue's name into a job, and a worker started after
it adopts the list it made (ONCE.ADOPT). HOST and PORT default to $ONCE_HOST / $ONCE_PORT, else localhost:6379.
"""
import os
import random
import sys
import time

import redis

host = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ONCE_HOST", "localhost")
port = int(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("ONCE_PORT", "6379"))
redis_client = redis.Redis(host=host, port=port)

while True:
    data = f"Task created at {time.strftime('%Y-%m-%d %H:%M:%S')}: {random.randint(0, 100)}"
    redis_client.rpush('tasks', data)
    print(f"Pushed: {data}")
    time.sleep(1)
