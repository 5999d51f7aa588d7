/*
 * A disk whose writeback fails, for a real server process: loaded with LD_PRELOAD, this makes
 * fsync(2) and fdatasync(2) of any file whose name ends in "-wal" (a shard's WAL) fail with EIO
 * while the file named by FAILING_FSYNC_TRIGGER exists, and passes every other call through.
 * When the trigger file holds a path, only WALs under that path fail (one node's data directory
 * among several processes that all preload this). Built by test/support/failing-fsync.ts with
 * the system's C compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether the trigger file exists; `prefix` then holds the path it names ("" for every WAL). */
static int read_trigger(char *prefix, size_t size) {
  const char *trigger = getenv("FAILING_FSYNC_TRIGGER");
  if (trigger == NULL) return 0;
  FILE *file = fopen(trigger, "r");
  if (file == NULL) return 0;
  size_t length = fread(prefix, 1, size - 1, file);
  fclose(file);
  prefix[length] = '\0';
  return 1;
}

static int fails(int fd) {
  char link[64];
  char path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t length = readlink(link, path, sizeof path - 1);
  if (length < 4) return 0;
  path[length] = '\0';
  if (strcmp(path + length - 4, "-wal") != 0) return 0;
  char prefix[4096];
  return read_trigger(prefix, sizeof prefix) && strncmp(path, prefix, strlen(prefix)) == 0;
}

/* Fails the call on a WAL while the trigger exists, else makes the real one (found once, by name). */
static int sync_or_fail(const char *name, int (**real)(int), int fd) {
  if (*real == NULL) *real = (int (*)(int))dlsym(RTLD_NEXT, name);
  if (fails(fd)) {
    errno = EIO;
    return -1;
  }
  return (*real)(fd);
}

int fsync(int fd) {
  static int (*real)(int);
  return sync_or_fail("fsync", &real, fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  return sync_or_fail("fdatasync", &real, fd);
}
