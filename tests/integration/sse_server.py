"""A tiny server on 127.0.0.1 that streams scripted server-sent events, chunk-encoded.

Each request gets the next ``StreamReply`` (or ``default`` when the script is empty): a status,
timed pieces (held after the first until ``gate`` is set, if given), then an end: ``complete``
(the chunked terminator), ``eof`` (close without it), ``reset`` (close with RST) or ``stall``
(send nothing more until ``hold`` passes).
The server tracks open connections and their peak, to prove the client gives them back.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .loopback import CountingHandler, LoopbackServer


def event(payload: Any) -> bytes:
    return (
        b"data: "
        + (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        + b"\n\n"
    )


@dataclass
class StreamReply:
    pieces: List[Tuple[float, bytes]] = field(default_factory=list)
    end: str = "complete"
    status: int = 200
    hold: float = 1.0
    gate: Optional[threading.Event] = None  # waited for before the second piece is sent
    sent: int = 0  # pieces handed to the socket so far


class SSEServer(LoopbackServer):
    """Serves the script in order; ``bodies`` records each request's JSON body."""

    def __init__(self, default: Optional[StreamReply] = None) -> None:
        self.script: List[StreamReply] = []
        self.default = default
        self.bodies: List[Dict[str, Any]] = []
        owner = self

        class Handler(CountingHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with owner.lock:
                    owner.bodies.append(json.loads(raw) if raw else {})
                    reply = owner.script.pop(0) if owner.script else owner.default
                assert reply is not None, "SSEServer: script empty"
                try:
                    self._stream(reply)
                except OSError:  # the client left half-way, as abandoned streams do
                    self.close_connection = True

            def _stream(self, reply: StreamReply) -> None:
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, (delay, piece) in enumerate(reply.pieces):
                    if delay and owner.stopping.wait(delay):
                        return
                    if i == 1 and reply.gate is not None:
                        reply.gate.wait(2.0)
                    reply.sent += 1  # before writing: a fast client may read it before we return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                if reply.end == "complete":
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.close_connection = True
                if reply.end == "reset":
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                elif reply.end == "stall":
                    owner.stopping.wait(reply.hold)

        super().__init__(Handler)
