/*
 * demux: splits Docker's multiplexed output stream (attach and logs
 * with Tty off) back into payload bytes.
 *
 * Each frame is an 8-byte header [stream, 0, 0, 0, size (big-endian)] and
 * size bytes of payload.  Reads split and merge frames arbitrarily (a header
 * may arrive one byte at a time, a read may end in the middle of a payload or
 * hold many frames), so the state is the partial header and the count of
 * payload bytes still owed; payload is handed out in place, never copied
 * here, which keeps the demuxer's memory fixed whatever the frame sizes.
 */
#include <string.h>

#include "client.h"
#include "wf/util.h"

/* Sticky failure: set in hlen so that every later feed refuses too. */
#define DEMUX_BROKEN 0xffffu

void wf_docker_demux_init(wf_docker_demux_t *d) {
  memset(d, 0, sizeof *d);
}

int wf_docker_demux_feed(wf_docker_demux_t *d, const char *p, size_t n, wf_docker_demux_cb cb,
                         void *data) {
  if (d->hlen == DEMUX_BROKEN) return WF_EPROTO;
  while (n > 0) {
    if (d->left > 0) {
      size_t k = n < d->left ? n : d->left;
      cb(d->stream, p, k, data);
      d->left -= (uint32_t)k;
      p += k;
      n -= k;
      continue;
    }
    /* Collect the header; a zero-size frame is legal and simply ends here. */
    while (d->hlen < 8 && n > 0) {
      d->hdr[d->hlen++] = (unsigned char)*p++;
      n--;
    }
    if (d->hlen < 8) break;
    if (d->hdr[0] > 3 || d->hdr[1] || d->hdr[2] || d->hdr[3]) {
      d->hlen = DEMUX_BROKEN;
      return WF_EPROTO;
    }
    d->stream = d->hdr[0];
    d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 | (uint32_t)d->hdr[6] << 8 |
              (uint32_t)d->hdr[7];
    d->hlen = 0;
    d->frames++;
  }
  return 0;
}

int wf_docker_demux_at_boundary(const wf_docker_demux_t *d) {
  return d->hlen == 0 && d->left == 0;
}
