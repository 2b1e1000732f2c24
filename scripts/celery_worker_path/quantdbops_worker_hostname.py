"""``[core] hostname_callable`` of the local Celery workers (scripts/celerystack.py): each its own name.

Every Airflow worker records ``hostname`` on the task instances it runs. Workers sharing one machine would
all record the machine's name; each of these gets its own from ``$QUANTDBOPS_WORKER_HOSTNAME``, set per
worker, so the task instances say which worker ran them. This directory is on the workers' PYTHONPATH
only: the scheduler and api-server keep Airflow's default.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_VAR = "QUANTDBOPS_WORKER_HOSTNAME"


def hostname() -> str:
    """This worker's name, else the machine's (Airflow's default, ``socket.getfqdn``)."""
    return os.environ.get(HOSTNAME_VAR) or socket.getfqdn()
