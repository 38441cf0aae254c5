"""moto in server mode for the local stack.

ThreadedMotoServer binds its port inside its thread, where werkzeug answers a taken port with
"Port N is in use by another program" and a SystemExit that ends only that thread, and start()
then waits forever. This binds in the caller's thread (PortInUse at once) and hands werkzeug the
socket; it also lets the stack wrap moto's WSGI app (devstack/persistence.py's gate)."""
from __future__ import annotations

import threading

from .ports import listen


class MotoServer:
    def __init__(self, host: str, port: int, middleware=None, variable: str = "MOTO_PORT"):
        self.host, self.port, self.variable = host, port, variable
        self.middleware = middleware
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        if self.middleware is not None:
            app = self.middleware(app)
        sock = listen(self.host, self.port, self.variable)
        try:
            # werkzeug duplicates the descriptor and serves on the socket as given
            self._server = make_server(self.host, self.port, app, threaded=True,
                                       request_handler=MotoRequestHandler, fd=sock.fileno())
        finally:
            sock.close()
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()
