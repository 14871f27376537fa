/*
 * ids: new keys and checks on given ones (pure).  A step key or pipeline id
 * that wfctl makes is an xid, the format the original uses; one a person
 * gives must work as the last segment of an etcd key and as a file name
 * (the node names the step's log file after it).
 */
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "wf/cli.h"
#include "wf/util.h"

void wf_cli_xid(char out[21]) {
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuv";
  static unsigned char machine[3];
  static uint32_t counter;
  static int ready;
  unsigned char id[12];
  if (!ready) {
    unsigned char r[7];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
      /* No entropy source: time and pid still make ids unique enough for a
       * CLI that makes a handful of them. */
      uint64_t t = wf_mono_ms() ^ ((uint64_t)getpid() << 20);
      memcpy(r, &t, sizeof r);
    }
    memcpy(machine, r, 3);
    counter = (uint32_t)r[3] << 16 | (uint32_t)r[4] << 8 | r[5];
    ready = 1;
  }
  uint32_t t = (uint32_t)time(NULL);
  uint32_t pid = (uint32_t)getpid();
  uint32_t n = counter++ & 0xffffffu;
  id[0] = (unsigned char)(t >> 24);
  id[1] = (unsigned char)(t >> 16);
  id[2] = (unsigned char)(t >> 8);
  id[3] = (unsigned char)t;
  memcpy(id + 4, machine, 3);
  id[7] = (unsigned char)(pid >> 8);
  id[8] = (unsigned char)pid;
  id[9] = (unsigned char)(n >> 16);
  id[10] = (unsigned char)(n >> 8);
  id[11] = (unsigned char)n;
  /* base32hex without padding: 96 bits -> 20 characters, the last one
   * carrying 1 bit and 4 zero bits, as rs/xid encodes. */
  unsigned bits = 0, nbits = 0, o = 0;
  for (int i = 0; i < 12; i++) {
    bits = (bits << 8) | id[i];
    nbits += 8;
    while (nbits >= 5) {
      out[o++] = alphabet[(bits >> (nbits - 5)) & 31];
      nbits -= 5;
    }
  }
  out[o++] = alphabet[(bits << (5 - nbits)) & 31];
  out[o] = '\0';
}

int wf_cli_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 200 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f || *p == '/') return 0;
  return 1;
}
