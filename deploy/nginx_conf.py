"""Fill in deploy/nginx/bnlab.conf.template the way the nginx image's entrypoint does (envsubst).

For nginx outside a container (a VM that runs replicas with ``streamlit run``), and for
``tests/test_deploy_nginx.py``, which runs Debian's nginx in front of two replicas::

    python deploy/nginx_conf.py --listen 8080 --replica 127.0.0.1:8501 --replica 127.0.0.1:8502 \\
        > /etc/nginx/conf.d/bnlab.conf

Only the template's ``${NGINX_*}`` variables are replaced; nginx's own ``$variables`` stay.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
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


#: nginx's main configuration for a local run (tests, benchmarks): one foreground process
#: (``master_process off``: no workers switching to another user), every path under ``{d}``.
LOCAL_MAIN_CONF = """worker_processes 1;
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    access_log off;
    include {d}/bnlab.conf;
    {include}
}}
"""


def nginx_binary() -> str | None:
    """Debian's nginx (``/usr/sbin`` is not on every user's PATH), or None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


#: A relay per replica for :func:`local_proxy`'s ``one_name`` mode: it listens on an address of
#: its own that the one name resolves to, and passes everything on to its replica.
RELAY_CONF = """server {{
    listen {address};
    access_log off;
    location / {{
        proxy_pass http://{replica};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_read_timeout 1h;
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_proxy(replicas: list[str], workdir: Path, timeout_s: float = 20, one_name: str | None = None):
    """Run nginx with this template on a free port of 127.0.0.1 in front of ``replicas``
    (``host:port``), with its pid, logs and temp files in ``workdir``; yield its port.

    The access log is ``workdir / "access.log"`` (the template's ``route=`` and ``upstream=``).
    nginx is stopped when the block ends.

    ``one_name`` gives the upstream block the form compose's does: one ``server`` line whose
    name resolves to every replica (compose's DNS name of a scaled service). nginx then runs in a
    private mount namespace (``unshare``) whose ``/etc/hosts`` maps the name to 127.0.0.2,
    127.0.0.3, ...; on each of those addresses the same nginx relays to one replica (which itself
    listens on 127.0.0.1), so the access log's ``upstream=`` names the replica by its relay's
    address. A relay answers 502 for a replica that is gone, where compose's address would refuse
    the connection: this mode is for where sessions go, not for losing a replica.
    """
    exe = nginx_binary()
    if exe is None:
        raise RuntimeError("nginx is missing (Debian: apt-get install nginx)")
    port = _free_port()
    include, prefix, user = "", [], []
    if one_name is None:
        servers = upstream_servers(replicas)
    else:
        relay_port = _free_port()
        addresses = [f"127.0.0.{k + 2}" for k in range(len(replicas))]
        hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
        (workdir / "hosts").write_text(hosts + "".join(f"\n{a} {one_name}" for a in addresses) + "\n")
        (workdir / "relays.conf").write_text("".join(
            RELAY_CONF.format(address=f"{a}:{relay_port}", replica=r)
            for a, r in zip(addresses, replicas, strict=True)))
        servers = f"server {one_name}:{relay_port};"
        include = f"include {workdir}/relays.conf;"
        # root: a mount namespace; anyone else: a user namespace with one (unshare -r), where
        # nginx believes it is root and would hand its temp dirs to `nobody`, a user the
        # namespace does not have: `user root` (the caller, outside) instead.
        prefix = ["unshare", "-m"] + (["-r"] if os.geteuid() != 0 else []) + [
            "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(workdir / "hosts")]
        if os.geteuid() != 0:
            user = ["-g", "user root;"]
    (workdir / "bnlab.conf").write_text(render({
        "NGINX_LISTEN": f"127.0.0.1:{port}",
        "NGINX_UPSTREAM_SERVERS": servers,
        "NGINX_ACCESS_LOG": str(workdir / "access.log"),
    }))
    (workdir / "nginx.conf").write_text(LOCAL_MAIN_CONF.format(d=workdir, include=include))
    args = [*prefix, exe, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", str(workdir / "error.log"), *user]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {check.stderr}")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nginx did not answer") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
