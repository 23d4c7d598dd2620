"""`vestige ui`: the web page over the store (vestige/ui), served on this machine."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys

import click

from vestige.cli._common import open_repo
from vestige.errors import UsageError

DEFAULT_PORT = 8725
#: What the `ui` extra brings; `vestige ui` without one of them says how to get them.
NEEDS = ("starlette", "uvicorn", "jinja2", "plotly")

EPILOG = """\b
Examples:
  vestige ui
  vestige ui --port 8123 --open
  vestige ui --host 0.0.0.0 --token auto

\b
It listens on 127.0.0.1 (this machine only) unless --host says otherwise; any other
host needs --token, and `--token auto` makes one and prints the URL that carries it.
Needs the ui extra: pip install 'vestige[ui]'.
"""


def loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int, fixed: bool) -> socket.socket:
    """A listening socket; the default port, when taken, gives way to a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for attempt in (port, 0):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), attempt))
        except OSError as e:
            sock.close()
            if fixed or attempt == 0:
                raise UsageError(f"cannot listen on {host}:{attempt}: {e.strerror or e}") from None
            continue
        sock.listen(128)
        return sock
    raise AssertionError("unreachable")


@click.command("ui", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"Port to listen on (default {DEFAULT_PORT}, or a free one if taken; 0: any).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--token",
    metavar="TOKEN|auto",
    help="Require this token (`auto`: make one); needed off loopback.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
def command(port: int | None, host: str, token: str | None, open_browser: bool) -> None:
    """Serve a web page over every run, figure and metric of the store."""
    missing = []
    for name in NEEDS:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(f"vestige ui needs {', '.join(missing)}: pip install 'vestige[ui]'")
    if not loopback(host) and not token:
        raise UsageError(f"--host {host} lets other machines in: give --token TOKEN (or "
                         "--token auto) too")  # fmt: skip
    if token == "auto":
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise UsageError("--token must be at least 16 characters (or auto)")
    repo = open_repo()
    store, root = repo.store.path, repo.store.root
    repo.close()
    sock = bind(host, DEFAULT_PORT if port is None else port, fixed=port is not None)
    shown = sock.getsockname()[1]
    name = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{'[' + name + ']' if ':' in name else name}:{shown}/"
    if token is not None:
        url += f"?token={token}"
    click.echo(f"vestige ui: {store}")
    click.echo(f"serving at {url}  (Ctrl-C stops)")
    sys.stdout.flush()
    serve(sock, store, root, token, url if open_browser else None)


def serve(sock: socket.socket, store: object, root: object, token: str | None,
          open_url: str | None) -> None:  # fmt: skip
    """Run the app on `sock` until Ctrl-C; open `open_url` in a browser once it listens."""
    import uvicorn

    from vestige.ui.app import create_app

    app = create_app(str(store), str(root), token=token)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            server_header=False)  # fmt: skip
    server = uvicorn.Server(config)
    if open_url is not None:
        import threading
        import time
        import webbrowser

        def opener() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                webbrowser.open(open_url)

        threading.Thread(target=opener, daemon=True).start()
    server.run(sockets=[sock])
