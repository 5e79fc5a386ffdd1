"""``[core] hostname_callable`` of the deployment test: each component plays a host of its own.

Task instances and triggerer jobs then record which "host" ran them, so the test can kill the
worker that runs tasks and the triggerer that holds triggers. On the PYTHONPATH of every component.
"""

import os
import socket


def hostname() -> str:
    return os.environ.get("SMSCN_DEPLOY_HOST") or socket.getfqdn()
