"""A tiny HTTP server on 127.0.0.1 that answers from a script, for the client's socket tests.

Each step is a ``Reply`` (status, headers, body, delay) or one of the transport faults
``"reset"`` (close with RST, no response) and ``"hang"`` (say nothing until the client leaves).
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from .loopback import CountingHandler, LoopbackServer


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Step = Union[Reply, str]


class ScriptedServer(LoopbackServer):
    """Serves the script in order; ``seen`` records (method, path, json body) per request."""

    def __init__(self) -> None:
        self.script: List[Step] = []
        self.seen: List[Dict[str, Any]] = []
        owner = self

        class Handler(CountingHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                with owner.lock:
                    owner.seen.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "body": json.loads(raw) if raw else None,
                            "auth": self.headers.get("authorization"),
                        }
                    )
                    step = (
                        owner.script.pop(0)
                        if owner.script
                        else Reply(500, {"error": {"message": "script empty"}})
                    )
                if step == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if step == "hang":
                    owner.stopping.wait(2.0)  # until the client leaves, or the test ends
                    self.close_connection = True
                    return
                assert isinstance(step, Reply)
                if step.delay:
                    time.sleep(step.delay)
                if isinstance(step.body, (bytes, str)):
                    data = step.body.encode() if isinstance(step.body, str) else step.body
                    ctype = "text/html" if data.lstrip().startswith(b"<") else "text/plain"
                else:
                    data = json.dumps(step.body).encode() if step.body is not None else b""
                    ctype = "application/json"
                self.send_response(step.status)
                self.send_header("Content-Type", step.headers.get("Content-Type", ctype))
                self.send_header("Content-Length", str(len(data)))
                for k, v in step.headers.items():
                    if k.lower() != "content-type":
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

        super().__init__(Handler)

    def models(self) -> List[Optional[str]]:
        return [s["body"].get("model") if s["body"] else None for s in self.seen]
