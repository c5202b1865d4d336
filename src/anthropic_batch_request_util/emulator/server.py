"""The HTTP server: a threading HTTP/1.1 server with keep-alive, and `Emulator` around it."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any

from .admin import handle_admin
from .api import Call, Route, find_route
from .config import EmulatorConfig
from .faults import Fault
from .state import EmulatorState, request_id
from .wire import (
    API_VERSIONS,
    ApiFailure,
    ErrorType,
    Reply,
    dumps,
    error_envelope,
)

READ_PIECE = 1024 * 1024  #: bytes read at a time when discarding an oversized body
POLL_S = 0.05  #: seconds between shutdown checks of the serving loop
#: the HTTP error each error fault answers with
ERROR_FAULTS = {
    Fault.HTTP_429: (ErrorType.RATE_LIMIT, "Rate limited (emulated http_429 fault)"),
    Fault.HTTP_529: (ErrorType.OVERLOADED, "Overloaded"),
    Fault.HTTP_500: (ErrorType.API, "Internal server error (emulated http_500 fault)"),
}
_REASONS = {529: "Overloaded"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  #: pending connections the listening socket holds

    def __init__(self, address: tuple[str, int], state: EmulatorState, verbose: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.verbose = verbose
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall without DNS.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client went away: nothing to report
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut every open client connection so its handler thread ends."""
        with self.sockets_lock:
            for sock in list(self.open_sockets):
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (bad request line, unknown method, …) also get the envelope."""
        kind = ErrorType.API if code >= 500 else ErrorType.INVALID_REQUEST
        text = message or HTTPStatus(code).phrase
        envelope = error_envelope(kind.value, text, rid := request_id())
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(Reply(envelope, code), rid)

    # -- one request -----------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        rid = request_id()
        self._body_read = False
        self._limit_headers: dict[str, str] = {}
        try:
            reply = self._answer(method, rid)
        except ApiFailure as failure:
            reply = self._failure(failure, rid)
        except Exception as error:  # a bug must still answer, as the API would: a 500
            traceback.print_exc()
            reply = self._failure(ApiFailure(ErrorType.API, f"emulator error: {error}"), rid)
        if not self._body_read and self._has_body():
            self.close_connection = True  # its unread body would be taken for the next request
        reply.headers = self._limit_headers | reply.headers
        self._send(reply, rid)

    def _has_body(self) -> bool:
        chunked = "chunked" in (self.headers.get("transfer-encoding") or "").lower()
        return chunked or (self.headers.get("content-length") or "0").strip() != "0"

    def _failure(self, failure: ApiFailure, rid: str) -> Reply:
        headers = {}
        if failure.error_type is ErrorType.RATE_LIMIT:
            headers["retry-after"] = format(self.server.state.config.retry_after, "g")
        headers.update(failure.headers)
        envelope = error_envelope(failure.error_type.value, failure.message, rid)
        return Reply(envelope, failure.status, headers)

    def _answer(self, method: str, rid: str) -> Reply:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        state = self.server.state
        if url.path.startswith("/_admin/"):
            body = self._read_body(state.config.max_message_bytes)
            return handle_admin(state, method, url.path, query, body)
        self._check_auth()
        version = self._check_version()
        found = find_route(method, url.path)
        route = found[0] if found else None
        if route is not None and route.large_body:
            state.worker.wait_idle()  # hold no body while the previous one is worked out
        body = self._read_body(_body_limit(route, state.config))
        latency = state.limits["latency_s"]
        if latency > 0:
            time.sleep(latency)
        if route is not None:
            self._limit_headers = state.limits.take(route.name)
        fault, cut = state.faults.draw_http(route is not None and route.results)
        if fault in ERROR_FAULTS:
            raise ApiFailure(*ERROR_FAULTS[fault])
        if fault is Fault.DROP_BEFORE:
            return Reply(drop=True)
        if found is None:
            raise ApiFailure(ErrorType.NOT_FOUND, "Not found")
        call = Call(state, found[1], query, body, version, self._base_url(), cut, rid)
        del body  # the handler may free it early (a create body can be 256 MB)
        try:
            reply = found[0].handler(call)
        except ApiFailure:
            if fault is not Fault.DROP_AFTER:
                raise
            reply = Reply()
        reply.drop = fault is Fault.DROP_AFTER
        return reply

    def _check_auth(self) -> None:
        key = self.headers.get("x-api-key") or ""
        scheme, _, token = (self.headers.get("authorization") or "").partition(" ")
        if not key and scheme.lower() == "bearer":
            key = token.strip()
        wanted = self.server.state.config.api_key
        if not key or (wanted is not None and key != wanted):
            raise ApiFailure(ErrorType.AUTHENTICATION, "invalid x-api-key")

    def _check_version(self) -> str:
        version = (self.headers.get("anthropic-version") or "").strip()
        if not version:
            raise ApiFailure(ErrorType.INVALID_REQUEST, "anthropic-version: header is required")
        if version not in API_VERSIONS:
            known = ", ".join(sorted(API_VERSIONS))
            raise ApiFailure(
                ErrorType.INVALID_REQUEST,
                f"anthropic-version: {version!r} is not a valid version (use one of {known})",
            )
        return version

    def _base_url(self) -> str:
        config = self.server.state.config
        if config.public_url:
            return config.public_url
        host = self.headers.get("host")
        if host:
            return f"http://{host}"
        return _url_of(self.server.server_name, self.server.server_port)

    # -- bodies ----------------------------------------------------------------------------

    def _read_body(self, limit: int) -> bytes:
        self._body_read = True  # or, on any failure below, the connection is closed
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            self.close_connection = True
            raise ApiFailure(ErrorType.INVALID_REQUEST, "invalid Content-Length") from None
        if length > limit:
            self._discard(length)
            raise _too_large(limit)
        return self.rfile.read(length) if length > 0 else b""

    def _discard(self, length: int) -> None:
        while length > 0:
            piece = self.rfile.read(min(length, READ_PIECE))
            if not piece:
                break
            length -= len(piece)

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            length = self._chunk_size()
            if length == 0:
                self._skip_trailers()
                break
            parts.append(self.rfile.read(length))
            self.rfile.readline()
            size += length
            if size > limit:
                self.close_connection = True  # the rest of the body is never read
                raise _too_large(limit)
        return b"".join(parts)

    def _chunk_size(self) -> int:
        try:
            return int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
        except ValueError:
            self.close_connection = True
            raise ApiFailure(ErrorType.INVALID_REQUEST, "invalid chunked body") from None

    def _skip_trailers(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass

    # -- answers ---------------------------------------------------------------------------

    def _send(self, reply: Reply, rid: str) -> None:
        if reply.drop:
            self._abort()
            return
        headers = {"request-id": rid, **reply.headers}
        if self.close_connection:
            headers["connection"] = "close"
        try:
            if reply.stream is None:
                self._send_json(reply, headers)
            else:
                self._send_stream(reply, headers)
        except OSError:
            self.close_connection = True  # the client went away mid-answer

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        reason = _REASONS.get(status) or HTTPStatus(status).phrase
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.log_request(status)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_json(self, reply: Reply, headers: dict[str, str]) -> None:
        body = dumps(reply.body)
        headers = {"content-type": "application/json", "content-length": str(len(body)), **headers}
        self.wfile.write(self._head(reply.status, headers) + body)

    def _send_stream(self, reply: Reply, headers: dict[str, str]) -> None:
        assert reply.stream is not None
        headers = {
            "content-type": reply.content_type,
            "transfer-encoding": "chunked",
            **headers,
        }
        self.wfile.write(self._head(reply.status, headers))
        for chunk in reply.stream:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
        if reply.cut:
            self._abort()
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """Close the connection at once, answer or no answer."""
        self.close_connection = True
        _shutdown(self.connection)


def _body_limit(route: Route | None, config: EmulatorConfig) -> int:
    return config.max_batch_bytes if route and route.large_body else config.max_message_bytes


def _too_large(limit: int) -> ApiFailure:
    return ApiFailure(
        ErrorType.REQUEST_TOO_LARGE,
        f"Request exceeds the maximum allowed number of bytes ({limit}).",
    )


def _url_of(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Emulator:
    """The Anthropic API emulator on a local port, for the official SDK to talk to.

        with Emulator(EmulatorConfig(processing_seconds=0.2), port=0) as emu:
            client = anthropic.Anthropic(base_url=emu.base_url, api_key="any")

    `port=0` picks a free port. As a context manager it serves in a background thread;
    `serve_forever()` serves in the calling thread instead (the command line does that).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.state = EmulatorState(self.config)
        self._server = _Server((host, port), self.state, verbose)
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def port(self) -> int:
        """The port the emulator listens on."""
        return self._server.server_port

    @property
    def base_url(self) -> str:
        """What `ANTHROPIC_BASE_URL` (or the SDK's `base_url=`) should be set to: the
        configured public URL, else `local_url`."""
        return self.config.public_url or self.local_url

    @property
    def local_url(self) -> str:
        """The address the emulator listens on, as a URL."""
        return _url_of(self._server.server_name, self._server.server_port)

    def start(self) -> Emulator:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(
                target=self.serve_forever, name=f"abr-emulator-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `close()` (or an exception, e.g. KeyboardInterrupt)."""
        self._serving = True
        self._server.serve_forever(poll_interval=POLL_S)

    def close(self) -> None:
        """Stop serving, drop open connections, release the port, stop the worker."""
        if self._serving:
            self._server.shutdown()
            self._serving = False
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
        self.state.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def set_faults(self, **fractions: float) -> dict[str, float]:
        """Change some fault fractions (as `POST /_admin/faults`); return them all."""
        return self.state.set_faults(fractions)

    def set_limits(self, **values: Any) -> dict[str, Any]:
        """Change some limits (as `POST /_admin/limits`); return them all."""
        return self.state.set_limits(values)

    def stats(self, submissions: bool = False) -> dict[str, Any]:
        """The same JSON as `GET /_admin/stats` (`?submissions=1` with `submissions`)."""
        return self.state.stats(submissions=submissions)

    def expire(self, batch_id: str | None = None) -> list[str]:
        """Expire unfinished batches now (as `POST /_admin/expire`); their ids."""
        return self.state.expire(batch_id)

    def finish(self, batch_id: str | None = None) -> list[str]:
        """Let unfinished batches finish processing now (as `POST /_admin/finish`)."""
        return self.state.finish(batch_id)

    def reset(self) -> None:
        """Forget everything (as `POST /_admin/reset`)."""
        self.state.reset()
