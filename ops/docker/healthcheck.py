"""Container health check of a web replica: exit 0 when its gateway answers GET /readyz with 200.

Run inside the container (docker-compose.yml's `healthcheck`), against uvicorn on 127.0.0.1:$PORT.
It sends the first name of ALLOWED_HOSTS as the Host header: the gateway answers any other Host
with a 400 on every path. A draining replica (SIGTERM, MESH_DRAIN_NOTICE_S) answers 503, so it is
unhealthy from its first second of shutdown; one whose database is down is too ("unavailable").
"""

from __future__ import annotations

import http.client
import os
import sys


def readyz_host() -> str:
    """A Host header the gateway accepts: the first concrete ALLOWED_HOSTS entry."""
    for entry in os.environ.get("ALLOWED_HOSTS", "localhost").split(","):
        name = entry.strip().lstrip(".")  # ".example.com" allows example.com itself too
        if name and name != "*":
            return name
    return "localhost"


def main() -> int:
    connection = http.client.HTTPConnection("127.0.0.1", int(os.environ.get("PORT", "8000")), timeout=5)
    try:
        connection.request("GET", "/readyz", headers={"Host": readyz_host()})
        response = connection.getresponse()
        status, body = response.status, response.read(500)
    except OSError as error:
        print(f"/readyz unreachable: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"/readyz answered {status}: {body.decode(errors='replace')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
