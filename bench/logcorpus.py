"""Part 12 of bench/bench.py: log corpora and zlib measurements.

Corpora (each `size` bytes, deterministic: a block made once, repeated; every
block is longer than deflate's 32 KiB window, so the repetition gives zlib
nothing it would not find in one block):

  build   the project's own compile commands (build.ninja's compile_commands.json,
          printed as `ninja -v` prints them, "[i/N] cc ...") each followed by
          what gcc says about that file with -Wconversion -Wsign-conversion
          -Wshadow -Wcast-qual -Wformat=2 added (-fsyntax-only): a real
          compiler log with warnings, notes and source excerpts
  docker  `docker pull` as a terminal sees it (progress bars redrawn with
          ANSI cursor moves), then BuildKit's plain progress of an apt-get
          and a pip install (seeded random layer ids, package names,
          versions, sizes, timings)
  tests   a test runner's log: one line per test with a microsecond ISO
          timestamp, worker, test id, outcome and duration, request log
          lines with UUIDs and latencies, now and then a failure's traceback
          (seeded random)
  base64  base64 of random bytes, 76 columns (an artifact dumped to the log)
  x       'x' bytes (part 3's and part 11's kind of output)

zlib is Python's zlib module, which is Debian's libz (zlib1g 1.2.13; the
module is linked against /lib/x86_64-linux-gnu/libz.so.1).  CPU is
time.process_time() of this one-threaded work.
"""
import base64
import json
import os
import random
import shlex
import subprocess
import time
import zlib

PIECE = 64 * 1024  # what the log store gets per read of a step's output


def _repeat(block, size):
    n = -(-size // len(block))
    return (block * n)[:size]


def build_block(build_dir, cache):
    """The build corpus' block (cached in `cache`: 11 s of gcc on 2 cores)."""
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            return f.read()
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        cmds = json.load(f)
    out = []
    extra = ["-fsyntax-only", "-Wconversion", "-Wsign-conversion", "-Wshadow", "-Wcast-qual",
             "-Wformat=2", "-fdiagnostics-color=never"]
    for i, e in enumerate(cmds):
        argv, skip = [], 0
        for x in shlex.split(e["command"]):
            if skip:
                skip -= 1
            elif x in ("-o", "-MQ", "-MF"):
                skip = 1
            elif x != "-MD":
                argv.append(x)
        p = subprocess.run(argv + extra, cwd=e["directory"], capture_output=True)
        out.append(b"[%d/%d] %s\n" % (i + 1, len(cmds), e["command"].encode()))
        out.append(p.stdout + p.stderr)
    block = b"".join(out)
    with open(cache + ".new", "wb") as f:
        f.write(block)
    os.rename(cache + ".new", cache)
    return block


_PKGS = ("libc6 libssl3 zlib1g libstdc++6 gcc-12 g++-12 make cmake git curl wget ca-certificates "
         "python3 python3-pip libpython3.11 libffi8 libsqlite3-0 libreadline8 libncursesw6 "
         "libgcc-s1 binutils cpp-12 libisl23 libmpc3 libmpfr6 libgmp10 perl libperl5.36 openssl "
         "libcurl4 libnghttp2-14 librtmp1 libssh2-1 libpsl5 libbrotli1 liblzma5 libzstd1 "
         "libexpat1 libxml2 libicu72 pkg-config dpkg-dev patch xz-utils unzip").split()
_PY = ("numpy pandas requests urllib3 certifi idna charset-normalizer six python-dateutil pytz "
       "tzdata pyyaml jinja2 markupsafe click attrs pluggy pytest iniconfig packaging "
       "setuptools wheel grpcio protobuf boto3 botocore s3transfer jmespath").split()


def docker_block(seed=11, size=1 << 21):
    r = random.Random(seed)
    out = []
    n = 0
    step = 1
    while n < size:
        img = r.choice(("golang:1.21", "node:20-bookworm", "python:3.11-slim", "debian:bookworm",
                        "rust:1.74"))
        layers = ["%012x" % r.getrandbits(48) for _ in range(r.randint(4, 9))]
        lines = ["Using default tag: latest" if ":" not in img else "%s: Pulling from library/%s"
                 % (img.split(":")[1], img.split(":")[0])]
        lines += ["%s: Pulling fs layer" % l for l in layers]
        lines += ["%s: Waiting" % l for l in layers[3:]]
        sizes = {l: r.uniform(0.2, 180.0) for l in layers}
        for phase in ("Downloading", "Extracting"):
            done = {l: 0.0 for l in layers}
            while any(done[l] < sizes[l] for l in layers):
                l = r.choice([x for x in layers if done[x] < sizes[x]])
                done[l] = min(sizes[l], done[l] + r.uniform(0.3, 4.0))
                k = layers.index(l)
                up = len(layers) - k
                bar = int(50 * done[l] / sizes[l])
                lines.append("\x1b[%dA\x1b[2K\r%s: %s [%s>%s] %6.5gMB/%.4gMB\r\x1b[%dB"
                             % (up, l, phase, "=" * bar, " " * (49 - bar), done[l], sizes[l], up))
                if done[l] >= sizes[l]:
                    lines.append("\x1b[%dA\x1b[2K\r%s: %s\r\x1b[%dB" % (
                        up, l, "Download complete" if phase == "Downloading" else "Pull complete",
                        up))
        lines.append("Digest: sha256:%064x" % r.getrandbits(256))
        lines.append("Status: Downloaded newer image for %s" % img)
        t = 0.0
        lines.append("#%d [%d/7] RUN apt-get update && apt-get install -y --no-install-recommends "
                     "build-essential" % (step, step))
        for i, p in enumerate(r.sample(_PKGS, 30)):
            t += r.uniform(0.01, 0.4)
            ver = "%d.%d.%d-%d" % (r.randint(0, 12), r.randint(0, 40), r.randint(0, 9),
                                    r.randint(1, 9))
            lines.append("#%d %.3f Get:%d http://deb.debian.org/debian bookworm/main amd64 %s "
                         "amd64 %s [%d kB]" % (step, t, i + 1, p, ver, r.randint(8, 40000)))
        for p in r.sample(_PKGS, 30):
            t += r.uniform(0.05, 1.5)
            ver = "%d.%d-%d" % (r.randint(0, 12), r.randint(0, 40), r.randint(1, 9))
            lines.append("#%d %.2f Selecting previously unselected package %s:amd64." % (step, t, p))
            lines.append("#%d %.2f Unpacking %s:amd64 (%s) ..." % (step, t, p, ver))
            lines.append("#%d %.2f Setting up %s:amd64 (%s) ..." % (step, t, p, ver))
        lines.append("#%d DONE %.1fs" % (step, t))
        step += 1
        lines.append("#%d [%d/7] RUN pip install -r requirements.txt" % (step, step))
        for p in r.sample(_PY, 15):
            t += r.uniform(0.05, 2.0)
            whl = "%s-%d.%d.%d-py3-none-any.whl" % (p, r.randint(0, 5), r.randint(0, 30),
                                                    r.randint(0, 9))
            mb = r.uniform(0.01, 20)
            lines.append("#%d %.2f Collecting %s" % (step, t, p))
            lines.append("#%d %.2f   Downloading %s (%.1f MB)" % (step, t, whl, mb))
            lines.append("#%d %.2f      %s %.1f/%.1f MB %.1f MB/s eta 0:00:00"
                         % (step, t, "\u2501" * 40, mb, mb, r.uniform(5, 90)))
        lines.append("#%d DONE %.1fs" % (step, t))
        step += 1
        s = ("\n".join(lines) + "\n").encode()
        out.append(s)
        n += len(s)
    return b"".join(out)


_MODS = ("orders payments users auth inventory search billing reports shipping notifications "
         "catalog sessions webhooks exports").split()
_VERBS = ("create update delete list get cancel refund retry expire paginate validate merge "
          "archive restore").split()


def tests_block(seed=12, size=1 << 21):
    r = random.Random(seed)
    t = 1765130000.0
    out = []
    n = 0
    while n < size:
        t += r.expovariate(40.0)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)
        w = r.randint(0, 7)
        m, v = r.choice(_MODS), r.choice(_VERBS)
        x = r.random()
        if x < 0.55:
            outcome = "PASSED" if r.random() > 0.01 else "FAILED"
            line = "%s INFO  [gw%d] tests/%s/test_%s.py::Test%s::test_%s_%s[case%d] %s in %.4fs\n" % (
                ts, w, m, m, m.capitalize(), v, r.choice(_MODS), r.randint(0, 63), outcome,
                r.expovariate(20.0))
            if outcome == "FAILED":
                line += ("Traceback (most recent call last):\n"
                         "  File \"/src/tests/%s/test_%s.py\", line %d, in test_%s\n"
                         "    assert resp.status_code == %d, resp.text\n"
                         "AssertionError: {\"error\":\"%s\",\"request_id\":\"%032x\"}\n"
                         % (m, m, r.randint(10, 900), v, 200, r.choice(("conflict", "not found",
                                                                          "timeout")),
                            r.getrandbits(128)))
        elif x < 0.9:
            line = ("%s DEBUG [gw%d] %s /api/v1/%s/%08x-%04x-%04x-%04x-%012x -> %d (%.2f ms) "
                    "request_id=%032x\n" % (ts, w, r.choice(("GET", "POST", "PUT", "DELETE")), m,
                                            r.getrandbits(32), r.getrandbits(16),
                                            r.getrandbits(16), r.getrandbits(16),
                                            r.getrandbits(48), r.choice((200, 200, 200, 201, 204,
                                                                         404, 409)),
                                            r.expovariate(0.5), r.getrandbits(128)))
        else:
            line = ("%s INFO  [gw%d] db: %s %d rows in %.3f ms (pool %d/%d)\n"
                    % (ts, w, r.choice(("SELECT", "INSERT", "UPDATE")), r.randint(0, 5000),
                       r.expovariate(1.0), r.randint(0, 16), 16))
        b = line.encode()
        out.append(b)
        n += len(b)
    return b"".join(out)


def base64_block(seed=13, size=1 << 21):
    raw = random.Random(seed).randbytes(size * 3 // 4)
    return base64.encodebytes(raw)


def corpus(name, size, build_dir, cache):
    if name == "build":
        return _repeat(build_block(build_dir, cache), size)
    if name == "docker":
        return _repeat(docker_block(), size)
    if name == "tests":
        return _repeat(tests_block(), size)
    if name == "base64":
        return _repeat(base64_block(), size)
    if name == "x":
        return b"x" * size
    raise ValueError(name)


def cpu():
    return time.process_time()


def compress(data, level, block=None):
    """Compresses data as the log store would get it (PIECE at a time) into
    one gzip stream; with block, a full flush every block input bytes (each
    block then decompresses on its own: raw deflate from its offset).
    Returns (compressed bytes, CPU seconds, [(input offset, output offset)])."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    out, index, nout = [], [(0, 0)], 0
    t = cpu()
    for pos in range(0, len(data), PIECE):
        b = c.compress(data[pos:pos + PIECE])
        out.append(b)
        nout += len(b)
        if block and (pos + PIECE) % block == 0 and pos + PIECE < len(data):
            b = c.flush(zlib.Z_FULL_FLUSH)
            out.append(b)
            nout += len(b)
            index.append((pos + PIECE, nout))
    out.append(c.flush())
    dt = cpu() - t
    return b"".join(out), dt, index


OUT = 256 * 1024  # inflate's output per call: Python's buffer for it stays warm


def _inflate(d, z):
    """Yields what d inflates from z (bytes or a file), at most OUT bytes a
    call, so that the measure is zlib's, not the allocation of a big
    output buffer per call."""
    read = z.read if hasattr(z, "read") else None
    pos = 0
    while True:
        if read:
            inp = read(1 << 20)
        else:
            inp = z[pos:pos + (1 << 20)]
            pos += len(inp)
        if not inp:
            break
        while inp:
            b = d.decompress(inp, OUT)
            inp = d.unconsumed_tail
            yield b
            if d.eof:
                return
    yield d.flush()


def decompress_cpu(z, size):
    """CPU seconds to inflate z (fed 1 MiB at a time, output dropped)."""
    d = zlib.decompressobj(31)
    n = 0
    t = cpu()
    for b in _inflate(d, z):
        n += len(b)
    dt = cpu() - t
    if n != size:
        raise RuntimeError("inflate gave %d bytes, not %d" % (n, size))
    return dt


def serve_plain(path, start, n):
    """The last bytes of a plain log: open, pread, close (wall seconds)."""
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        b = os.pread(fd, n, start)
    finally:
        os.close(fd)
    return time.perf_counter() - t, b


def serve_stream(path, start, n):
    """The same from one gzip stream: inflate from byte 0 of the file,
    dropping output until start (what offset=, tail= and Range need)."""
    t = time.perf_counter()
    d = zlib.decompressobj(31)
    got, out = 0, []
    with open(path, "rb") as f:
        for b in _inflate(d, f):
            if got + len(b) > start:
                out.append(b[max(0, start - got):])
            got += len(b)
            if got >= start + n:
                break
    return time.perf_counter() - t, b"".join(out)[:n]


def serve_blocked(path, index, start, n):
    """The same from a blocked stream: raw inflate from the last flush point
    at or before start (the index in memory, as a small side file would hold
    it)."""
    t = time.perf_counter()
    i = max(k for k, (u, _) in enumerate(index) if u <= start)
    u0, c0 = index[i]
    d = zlib.decompressobj(-15 if i else 31)
    got, out = u0, []
    with open(path, "rb") as f:
        f.seek(c0)
        for b in _inflate(d, f):
            if got + len(b) > start:
                out.append(b[max(0, start - got):])
            got += len(b)
            if got >= start + n:
                break
    return time.perf_counter() - t, b"".join(out)[:n]
