"""Fill in deploy/nginx/bnlab.conf.template the way the nginx image's entrypoint does (envsubst).

For nginx outside a container (a VM that runs replicas with ``streamlit run``), and for
``tests/test_deploy_nginx.py``, which runs Debian's nginx in front of two replicas::

    python deploy/nginx_conf.py --listen 8080 --replica 127.0.0.1:8501 --replica 127.0.0.1:8502 \\
        > /etc/nginx/conf.d/bnlab.conf

Only the template's ``${NGINX_*}`` variables are replaced; nginx's own ``$variables`` stay.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "bnlab.conf.template"
VARIABLES = ("NGINX_LISTEN", "NGINX_UPSTREAM_SERVERS", "NGINX_ACCESS_LOG")


def render(values: dict[str, str], template: str | None = None) -> str:
    """The template with every ``${NAME}`` of :data:`VARIABLES` replaced by ``values[NAME]``.

    Raises ``KeyError`` if a variable is missing, ``ValueError`` if the template uses one that
    :data:`VARIABLES` does not name (it would reach nginx unreplaced).
    """
    text = TEMPLATE.read_text() if template is None else template
    used = set(re.findall(r"\$\{(\w+)\}", text))
    if used - set(VARIABLES):
        raise ValueError(f"the template uses unknown variables {sorted(used - set(VARIABLES))}")
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)


def upstream_servers(replicas: list[str]) -> str:
    """``server host:port;`` lines for the upstream block, one per replica."""
    return "\n    ".join(f"server {r};" for r in replicas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="8080", help="nginx's listen (port or address:port)")
    ap.add_argument("--replica", action="append", required=True, help="host:port of a replica (repeat)")
    ap.add_argument("--access-log", default="/var/log/nginx/access.log")
    a = ap.parse_args()
    print(render({"NGINX_LISTEN": a.listen, "NGINX_UPSTREAM_SERVERS": upstream_servers(a.replica),
                  "NGINX_ACCESS_LOG": a.access_log}), end="")


if __name__ == "__main__":
    main()
