"""A syslog collector on loopback for the audit tests: RFC 6587 octet-counted frames over TCP,
any number of connections (a gateway reconnects, or opens a new one after a reload), and a
valve that stops reading (a slow or stalled collector: the gateway's sends back up)."""

from __future__ import annotations

import re
import socket
import threading
from typing import Any

#: an RFC 5424 frame as the gateway writes it; group 1: PRI, group 2: the XML message
SYSLOG = re.compile(rb"^<(\d+)>1 \S+Z \S+ dicomguard \d+ DICOM\+RFC3881 - \xef\xbb\xbf(<.*>)$",
                    re.S)


class TcpCollector:
    """Frames received, in arrival order per connection (``frames``; all connections).

    ``receive_buffer`` sets SO_RCVBUF on the listening socket (inherited by the accepted
    ones): small, and with :meth:`pause`, the gateway's sends back up after a few frames.
    """

    def __init__(self, host: str = "127.0.0.1", receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"tcp://{host}:{self.port}"
        self.frames: list[bytes] = []
        self.connections = 0
        self._arrived = threading.Condition()
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def pause(self) -> None:
        """Stop reading (what is already in the kernel's buffers stays there)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def messages(self) -> list[bytes]:
        """The XML message of each frame so far (a frame that is not the gateway's RFC 5424
        form fails the test)."""
        with self._arrived:
            frames = list(self.frames)
        out = []
        for frame in frames:
            m = SYSLOG.match(frame)
            assert m is not None, frame[:120]
            out.append(m.group(2))
        return out

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Whether ``predicate(frames)`` holds within ``timeout`` seconds (the collector reads
        in its own threads: frames the gateway sent may not be parsed yet)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: predicate(self.frames), timeout)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                self._flowing.wait()
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b" " in buf:
                    size, rest = buf.split(b" ", 1)
                    if len(rest) < int(size):
                        break
                    with self._arrived:
                        self.frames.append(rest[: int(size)])
                        self._arrived.notify_all()
                    buf = rest[int(size):]

    def close(self) -> None:
        self.sock.close()
        self._flowing.set()
