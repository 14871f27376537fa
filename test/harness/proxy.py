"""A TCP proxy on a free loopback port that a test can cut and restore, to
take etcd away from one process without stopping etcd itself.

    p = TcpProxy("127.0.0.1", etcd.client_port).start()
    agent uses p.url ...
    p.cut()       # drops every open connection; new ones are closed at once
    p.restore()   # accepts and forwards again
    p.drop_responses = True   # requests still reach etcd, its answers are lost
    p.error_replies = True    # ... and each request is answered with etcd's
                              # 503 "transport is closing" instead
                              # (both spare watch streams: events still flow)
    p.delay_watch(b"...", 1.0)  # hold back, by 1 s each, the messages of the
                                # watch streams whose request contains b"..."
    p.close()
"""
import socket
import struct
import threading
import time


class TcpProxy:
    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.conns = set()
        self.is_cut = False
        self.closed = False
        self.accepted = 0
        self.drop_responses = False
        self.error_replies = False
        self.delays = []          # (pattern, seconds) for watch streams
        self.first_request = {}   # client socket -> the last 8 KiB it sent

    def start(self):
        self.lsock.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.is_cut:
                    _drop(c)
                    continue
                self.accepted += 1
            try:
                u = socket.create_connection(self.target, timeout=5)
                u.settimeout(None)
            except OSError:
                _drop(c)
                continue
            with self.lock:
                self.conns.add(c)
                self.conns.add(u)
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def delay_watch(self, pattern, seconds):
        self.delays.append((pattern, seconds))

    def _watch_request(self, client):
        """The watch request of a watch connection, else None."""
        req = self.first_request.get(client, b"")
        i = req.rfind(b"POST /v3/watch")   # a watch is the last request of its connection
        return req[i:] if i >= 0 else None

    def _delay_for(self, client):
        req = self._watch_request(client)
        if req is None:
            return 0
        return max([sec for pat, sec in self.delays if pat in req] or [0])

    def _pump(self, src, dst, is_response):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._forward(src, dst, data, is_response)
        except OSError:
            pass
        self._end_pair(src, dst)

    def _forward(self, src, dst, data, is_response):
        """One chunk read from src, on its way to dst (subclasses change
        what passes)."""
        if not is_response:  # the last 8 KiB of requests on this connection
            self.first_request[src] = (self.first_request.get(src, b"") + data)[-8192:]
        if is_response and (self.drop_responses or self.error_replies) and \
                self._watch_request(dst) is None:
            return
        if is_response and self.delays:
            d = self._delay_for(dst)
            if d:
                time.sleep(d)
        dst.sendall(data)
        if not is_response and self.error_replies and data.startswith(b"POST ") and \
                not data.startswith(b"POST /v3/watch"):
            src.sendall(ERROR_REPLY)

    def _end_pair(self, src, dst):
        """One direction ended: both sockets of the pair go."""
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            for s in (src, dst):
                if s in self.conns:
                    self.conns.discard(s)
                    s.close()

    def cut(self):
        with self.lock:
            self.is_cut = True
            conns = list(self.conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self):
        with self.lock:
            self.is_cut = False

    def close(self):
        self.closed = True
        self.cut()
        try:
            self.lsock.close()
        except OSError:
            pass


_BODY = (b'{"error":"transport is closing","message":"transport is closing","code":14}')
ERROR_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


def _drop(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    except OSError:
        pass
    sock.close()
