/*
 * fuzz-check.h: the oracle check every fuzz target uses.  Unlike assert()
 * it stays on in release builds, and abort() makes libFuzzer save the
 * input that failed it.
 */
#ifndef WF_FUZZ_CHECK_H
#define WF_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);  \
      abort();                                                                \
    }                                                                         \
  } while (0)

#endif
