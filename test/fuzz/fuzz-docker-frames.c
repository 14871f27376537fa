/*
 * fuzz-docker-frames: Docker's 8-byte framed output stream (attach / logs
 * with Tty off) through the demultiplexer the DOCKER runner uses
 * (wf_docker_demux_*), fed in arbitrary pieces.
 *
 * Oracle: the same bytes fed in one piece to a second demuxer must give the
 * same payload bytes per stream, the same frame count, the same error
 * point and the same boundary verdict.
 *
 * Input layout: bytes 0-7 piece sizes (each 1 + b, used cyclically); the
 * rest is the stream.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/runner/docker/client.h"
#include "wf/util.h"
#include "fuzz-check.h"

typedef struct out_s {
  wf_buf_t stream[4];
} out_t;

static void on_piece(int stream, const char *p, size_t n, void *data) {
  out_t *o = data;
  CHECK(stream >= 0 && stream <= 3);
  CHECK(n > 0);
  CHECK(wf_buf_append(&o->stream[stream], p, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  const uint8_t *sizes = data;
  const char *body = (const char *)data + 8;
  size_t len = size - 8;

  out_t a, b;
  for (int i = 0; i < 4; i++) {
    wf_buf_init(&a.stream[i], 1u << 24);
    wf_buf_init(&b.stream[i], 1u << 24);
  }
  wf_docker_demux_t da, db;
  wf_docker_demux_init(&da);
  wf_docker_demux_init(&db);

  int ra = 0;
  size_t pos = 0, k = 0;
  while (pos < len && ra == 0) {
    size_t n = 1 + sizes[k++ % 8];
    if (n > len - pos) n = len - pos;
    ra = wf_docker_demux_feed(&da, body + pos, n, on_piece, &a);
    pos += n;
  }
  int rb = wf_docker_demux_feed(&db, body, len, on_piece, &b);

  CHECK(ra == rb);
  CHECK(ra == 0 || ra == WF_EPROTO);
  if (ra == 0) {
    CHECK(da.frames == db.frames);
    CHECK(wf_docker_demux_at_boundary(&da) == wf_docker_demux_at_boundary(&db));
    for (int i = 0; i < 4; i++) {
      CHECK(a.stream[i].len == b.stream[i].len);
      CHECK(a.stream[i].len == 0 ||
            memcmp(a.stream[i].data, b.stream[i].data, a.stream[i].len) == 0);
    }
    /* Once stuck, a demuxer stays stuck; a healthy one takes more input. */
  } else {
    CHECK(wf_docker_demux_feed(&da, "x", 1, on_piece, &a) == WF_EPROTO);
  }
  for (int i = 0; i < 4; i++) {
    wf_buf_finish(&a.stream[i]);
    wf_buf_finish(&b.stream[i]);
  }
  return 0;
}
