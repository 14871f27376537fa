#!/usr/bin/env python3
"""One follower of part 11 (bench/bench.py): a separate process that, once
the bench writes a line to its stdin, asks the node for
GET /v1/steps/<key>/log?follow=1 (docs/protocol.md §6.1) and reads the
chunked answer as fast as it can, into one 1 MiB buffer (recv_into, no
allocation per read), decoding the chunk framing in place and hashing the
payload (sha256, OpenSSL's through hashlib) unless told to count only.

    follow_reader.py PORT KEY TOKEN_FILE HASH(0|1)

Prints "ready" when it has started, and at the end one JSON line: HTTP
status, payload bytes, sha256 (hex, or null), whether the last chunk came,
the CLOCK_MONOTONIC times (time.perf_counter, the bench's clock) of the go,
the head and the end, and its own CPU (user, sys).
"""
import hashlib
import json
import os
import resource
import socket
import sys
import time


def main():
    port, key, token_file, do_hash = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    with open(token_file) as f:
        token = f.read().strip()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if not sys.stdin.readline():
        return
    t_go = time.perf_counter()
    h = hashlib.sha256() if do_hash else None
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /v1/steps/%s/log?follow=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Authorization: Bearer %s\r\nConnection: close\r\n\r\n"
               % (key, port, token)).encode())
    buf = bytearray(1 << 20)
    mv = memoryview(buf)
    # the head
    head = bytearray()
    while b"\r\n\r\n" not in head:
        n = s.recv_into(buf)
        if n == 0:
            break
        head += mv[:n]
    t_head = time.perf_counter()
    i = head.find(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    pending = bytes(head[i + 4:]) if i >= 0 else b""
    total = 0
    complete = False
    # chunk framing: want_size (a size line, possibly split across reads),
    # left (payload bytes of the current chunk still to come), crlf (the
    # CRLF after a chunk's payload still to skip)
    line = b""
    left = 0
    crlf = 0
    err = None
    if status == 200:
        data, n = pending, len(pending)
        while not complete:
            if data is None:
                n = s.recv_into(buf)
                if n == 0:
                    break
                data = mv
            pos = 0
            while pos < n:
                if left:
                    k = min(left, n - pos)
                    if h:
                        h.update(data[pos:pos + k])
                    total += k
                    left -= k
                    pos += k
                    if not left:
                        crlf = 2
                elif crlf:
                    k = min(crlf, n - pos)
                    crlf -= k
                    pos += k
                else:
                    j = bytes(data[pos:min(n, pos + 32)]).find(b"\n")
                    if j < 0:
                        line += bytes(data[pos:n])
                        pos = n
                        if len(line) > 64:
                            err = "bad chunk size line"
                            break
                        continue
                    line += bytes(data[pos:pos + j])
                    pos += j + 1
                    size = int(line.strip().split(b";")[0], 16)
                    line = b""
                    if size == 0:
                        complete = True  # trailers (none) and the final CRLF are not read
                        break
                    left = size
            if err:
                break
            data = None
    else:
        err = (bytes(head[:200]) + pending[:200]).decode("latin-1")
    t_end = time.perf_counter()
    s.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    sys.stdout.write(json.dumps({"status": status, "bytes": total,
                                 "sha256": h.hexdigest() if h else None,
                                 "complete": complete, "error": err, "t_go": t_go,
                                 "t_head": t_head, "t_end": t_end,
                                 "cpu": [ru.ru_utime, ru.ru_stime], "pid": os.getpid()}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
