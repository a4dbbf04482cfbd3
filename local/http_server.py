"""A threaded werkzeug HTTP server on a background thread: the gateway's (``make run``) and the fake provider's."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The gateway writes its own access log line (with tier, cache and request id).
        return


class LocalServer:
    """A threaded werkzeug HTTP server for a WSGI app, run on a background thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 3000, name: str = "local-gateway") -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
