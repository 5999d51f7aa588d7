import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SOURCE = fileURLToPath(new URL("failing-fsync.c", import.meta.url));

/**
 * Builds failing-fsync.c into `dir` with the system's C compiler (`.ci/run` installs gcc) and
 * returns the environment that preloads it into a process: fsyncs of WAL files then fail with
 * EIO while `trigger` exists (only those under the path it holds, when it holds one).
 */
export function failingFsyncEnvironment(dir: string, trigger: string): Record<string, string> {
  const library = join(dir, "failing-fsync.so");
  execFileSync("cc", ["-Wall", "-Werror", "-shared", "-fPIC", "-O2", "-o", library, SOURCE, "-ldl"]);
  return { LD_PRELOAD: library, FAILING_FSYNC_TRIGGER: trigger };
}
