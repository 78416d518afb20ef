"""A misbehaving S3-compatible endpoint: an HTTP proxy in front of moto's server that corrupts, or
holds back, its answers to GETs of archived objects, as a faulty store or network would; or that
answers ``NotImplemented`` to optional operations, as some S3-compatible stores do.

Everything else passes through unchanged, so the code under test talks real S3 over real HTTP.
"""

from __future__ import annotations

import http.client
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Mode = Literal["corrupt", "hold", "step", "lacking"]
_DROPPED_HEADERS = {"content-length", "transfer-encoding", "connection"}
#: Optional S3 operations by how they look on the wire (path-style requests).
OPTIONAL_OPERATIONS = {
    "ListMultipartUploads": ("GET", "uploads"),
    "DeleteObjects": ("POST", "delete"),
    "GetObjectLockConfiguration": ("GET", "object-lock"),
}
#: Optional behaviour by a header: a PutObject that may only create (``If-None-Match: *``).
CONDITIONAL_PUT = "ConditionalPut"
_NOT_IMPLEMENTED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
    b"<Message>A header you provided implies functionality that is not implemented</Message></Error>"
)


class FaultyS3Proxy:
    def __init__(self, upstream: str, mode: Mode, lacking: frozenset[str] = frozenset()) -> None:
        self.upstream = urlsplit(upstream)
        self.mode = mode
        #: In "lacking" mode, the optional operations answered with NotImplemented (HTTP 501).
        self.lacking = lacking
        #: The lacking operations that were asked for, in order.
        self.refused: list[str] = []
        #: Set when a GET of an archived object arrives (hold mode: it waits for ``release``).
        self.archive_read = threading.Event()
        self.release = threading.Event()
        #: Any mode: the first HEAD of a key ending so waits for ``release``, announced by ``head_held``.
        self.hold_head: str | None = None
        self.head_held = threading.Event()
        #: Any mode: the first UploadPart of a multipart upload waits for ``release``, announced by
        #: ``part_held`` (an upload is then open, as in a long-running backup).
        self.hold_upload_part = False
        self.part_held = threading.Event()
        #: Any mode: HEADs of keys ending so answer without their object lock, as a store that
        #: stored the object unlocked would.
        self.unlocked_head: str | None = None
        #: Step mode: each GET of an archived object is announced here and waits for one ``proceed``.
        self.held: queue.Queue[str] = queue.Queue()
        self.proceed = threading.Semaphore(0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.mode == "lacking" and (
                    operation := proxy.operation(self.command, self.path, self.headers.get("If-None-Match"))
                ):
                    proxy.refused.append(operation)
                    self.send_response(501, "Not Implemented")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_NOT_IMPLEMENTED)))
                    self.end_headers()
                    self.wfile.write(_NOT_IMPLEMENTED)
                    return
                if (
                    self.command == "HEAD"
                    and proxy.hold_head is not None
                    and self.path.split("?")[0].endswith(proxy.hold_head)
                    and not proxy.head_held.is_set()
                ):
                    proxy.head_held.set()
                    proxy.release.wait(60)
                if (
                    self.command == "PUT"
                    and proxy.hold_upload_part
                    and "partNumber=" in self.path
                    and not proxy.part_held.is_set()
                ):
                    proxy.part_held.set()
                    proxy.release.wait(60)
                upstream = http.client.HTTPConnection(proxy.upstream.netloc, timeout=60)
                headers = {key: value for key, value in self.headers.items() if key.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                if (
                    self.command == "GET"
                    and "/archive/" in self.path
                    and self.path.split("?")[0].endswith(".gz")
                ):
                    proxy.archive_read.set()
                    if proxy.mode == "corrupt" and payload:
                        payload = payload[:-1] + bytes([payload[-1] ^ 0xFF])
                    elif proxy.mode == "step":
                        proxy.held.put(self.path)
                        proxy.proceed.acquire(timeout=60)
                    else:
                        proxy.release.wait(60)
                self.send_response(response.status, response.reason)
                unlocked = (
                    self.command == "HEAD"
                    and proxy.unlocked_head is not None
                    and self.path.split("?")[0].endswith(proxy.unlocked_head)
                )
                for key, value in response.getheaders():
                    if unlocked and key.lower().startswith("x-amz-object-lock"):
                        continue
                    if key.lower() not in _DROPPED_HEADERS:
                        self.send_header(key, value)
                # A HEAD's length is the object's, as the store said it: there is no payload to count.
                stated = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", stated or str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def operation(self, method: str, path: str, if_none_match: str | None = None) -> str | None:
        """The lacking optional operation a request is, if it is one."""
        if CONDITIONAL_PUT in self.lacking and method == "PUT" and if_none_match:
            return CONDITIONAL_PUT
        query = {part.split("=", 1)[0] for part in urlsplit(path).query.split("&") if part}
        for name, (verb, marker) in OPTIONAL_OPERATIONS.items():
            if name in self.lacking and method == verb and marker in query and "uploadId" not in query:
                return name
        return None


@contextmanager
def faulty_s3_proxy(
    upstream: str, mode: Mode, lacking: frozenset[str] = frozenset()
) -> Iterator[FaultyS3Proxy]:
    proxy = FaultyS3Proxy(upstream, mode, lacking)
    serving = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    serving.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        proxy.server.shutdown()
        proxy.server.server_close()
