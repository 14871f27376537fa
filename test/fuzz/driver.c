/*
 * driver: a plain main() for the fuzz targets when there is no libFuzzer
 * (a gcc build with -Dfuzz=true).  It replays inputs through
 * LLVMFuzzerTestOneInput once each, so the seed corpus still runs as a
 * regression test under whatever sanitizers the build has.
 *
 * usage: fuzz-<name> [-flags...] FILE|DIR...
 * Arguments starting with '-' (libFuzzer's flags) are ignored; a directory
 * stands for every regular file in it.  Exits 0 when every input ran (a
 * failing check aborts), 1 if an input could not be read.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Targets that need set-up define it; weak, so the others link too. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0, n;
  uint8_t *buf = malloc(cap);
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) buf = realloc(buf, cap *= 2);
  }
  int err = ferror(f);
  fclose(f);
  if (!buf || err) {
    fprintf(stderr, "%s: read failed\n", path);
    free(buf);
    return -1;
  }
  /* An exact-size copy, so ASan sees reads past the end of the input. */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) abort();
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  int bad = 0, ran = 0;
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (argv[i][0] == '-') continue;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      bad = 1;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) != 0) bad = 1;
      else ran++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (run_file(path) != 0) bad = 1;
      else ran++;
    }
    if (d) closedir(d);
  }
  printf("%s: %d inputs replayed\n", argv[0], ran);
  return bad;
}
