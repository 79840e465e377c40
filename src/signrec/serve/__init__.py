"""`signrec serve`: a local web app for people who do not use a terminal, and a JSON API (see `app`).

It listens on 127.0.0.1 unless another address is asked for, and then says that other machines can use it.
"""

from __future__ import annotations

import ipaddress
import logging.config
import os
import socket

from ..predict import Predictor
from .app import ServeOptions, create_app

__all__ = ["ServeOptions", "create_app", "host_warning", "listen", "serve"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "signrec serve: %(message)s"}},
    "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}},
    "loggers": {
        "uvicorn": {"handlers": ["out"], "level": "WARNING", "propagate": False},
        "signrec.serve": {"handlers": ["out"], "level": "INFO", "propagate": False},
    },
}


def host_warning(host: str) -> str:
    """A warning when `host` lets other machines connect, else empty."""
    if host == "localhost":
        return ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:  # a host name
        pass
    return (f"warning: listening on {host}: other machines that can reach this one can use the recogniser and send "
            f"it files. Browsers allow the camera only at http://127.0.0.1 or http://localhost (or over HTTPS).")  # fmt: skip


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port); OSError with a message that says what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise OSError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror} (another server there? choose another --port, "
                      f"or --port 0 for any free one)") from None  # fmt: skip
    sock.set_inheritable(True)
    return sock


def serve(model: str | os.PathLike | Predictor, host: str = "127.0.0.1", port: int = 8000,
          options: ServeOptions | None = None, verbose: bool = False) -> None:  # fmt: skip
    """Run the web app until Ctrl-C or SIGTERM. Prints the address once the workers are ready."""
    import uvicorn

    from ..extract import native_log_filter

    options = options or ServeOptions(quiet=not verbose)
    logging.config.dictConfig(LOGGING)
    log = logging.getLogger("signrec.serve")
    warning = host_warning(host)
    if warning:
        log.warning(warning)
    with native_log_filter(not verbose):
        sock = listen(host, port)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host

        def ready() -> None:
            log.info(f"ready at http://{shown}:{bound}/ (model {model}; API: http://{shown}:{bound}/docs; "
                     f"Ctrl-C stops)")  # fmt: skip

        try:
            app = create_app(model, options, on_ready=ready)
            config = uvicorn.Config(app, log_config=LOGGING, access_log=False, lifespan="on",
                                    ws_max_size=int(options.max_frame_mb * 1e6) + 1024, timeout_graceful_shutdown=10)  # fmt: skip
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
