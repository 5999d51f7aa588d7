/*
 * A disk whose writeback fails, for a real server process: loaded with LD_PRELOAD, this makes
 * fsync(2) and fdatasync(2) of any file whose name ends in "-wal" (a shard's WAL) fail with EIO
 * while the file named by FAILING_FSYNC_TRIGGER exists, and pass every other call through.
 * Built by test/support/failing-fsync.ts with the system's C compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fails(int fd) {
  const char *trigger = getenv("FAILING_FSYNC_TRIGGER");
  if (trigger == NULL || access(trigger, F_OK) != 0) return 0;
  char link[64];
  char path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t length = readlink(link, path, sizeof path - 1);
  if (length < 4) return 0;
  path[length] = '\0';
  return strcmp(path + length - 4, "-wal") == 0;
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
