import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadBundle, type LoadedBundle } from "../../server/code-cache.js";
import { withHeader } from "../support/code-cache-file.js";
import { tempDir } from "../support/temp-dir.js";

const dirs: { remove: () => void }[] = [];
afterAll(() => dirs.forEach((dir) => dir.remove()));

/** A small CommonJS bundle in a directory of its own, with enough code for V8 to cache. */
function bundleDir(answer = 42): { bundle: string; cacheDir: string; cacheFile: string } {
  const dir = tempDir("apostate-code-cache-");
  dirs.push(dir);
  const bundle = join(dir.path, "bundle.cjs");
  const helpers = Array.from({ length: 50 }, (_, i) => `function helper${i}(x) { return x * ${i} + ${i}; }`).join("\n");
  writeFileSync(
    bundle,
    `"use strict";\n${helpers}\nconst path = require("node:path");\n` +
      `module.exports = { answer: () => ${answer}, file: __filename, dir: __dirname, sep: path.sep, sum: helper7(1) + helper9(2) };\n`,
  );
  const cacheDir = join(dir.path, "cache");
  return { bundle, cacheDir, cacheFile: join(cacheDir, "bundle.cjs.v8-cache") };
}

interface Exports {
  answer(): number;
  file: string;
  dir: string;
  sep: string;
  sum: number;
}

const exportsOf = (loaded: LoadedBundle) => loaded.exports as Exports;

/** Loads, then saves the cache as a process does after its start-up. */
function loadAndSave(bundle: string, cacheDir: string | undefined): LoadedBundle {
  const loaded = loadBundle(bundle, cacheDir);
  expect(loaded.saveCache()).toBe(true);
  return loaded;
}

describe("V8's code cache for a CommonJS bundle", () => {
  it("runs the bundle as require() would, writes the cache once, then uses it", () => {
    const { bundle, cacheDir, cacheFile } = bundleDir();
    const first = loadAndSave(bundle, cacheDir);
    expect(first.cache).toBe("absent");
    expect(exportsOf(first)).toMatchObject({ file: bundle, dir: join(bundle, ".."), sep: "/", sum: 1 * 7 + 7 + (2 * 9 + 9) });
    expect(exportsOf(first).answer()).toBe(42);
    const written = readFileSync(cacheFile);
    const header = JSON.parse(written.subarray(0, written.indexOf(0x0a)).toString()) as Record<string, string>;
    expect(header).toMatchObject({ node: process.version, v8: process.versions.v8, arch: process.arch });
    expect(header.bundle).toMatch(/^[0-9a-f]{64}$/);

    const second = loadAndSave(bundle, cacheDir);
    expect(second.cache).toBe("used");
    expect(exportsOf(second).answer()).toBe(42);
    // A cache in use is not written again.
    expect(readFileSync(cacheFile).equals(written)).toBe(true);
    expect(readdirSync(cacheDir)).toEqual(["bundle.cjs.v8-cache"]);
  });

  it("ignores the cache of another bundle of the very same length, and replaces it", () => {
    const { bundle, cacheDir, cacheFile } = bundleDir(42);
    loadAndSave(bundle, cacheDir);
    const old = readFileSync(cacheFile);
    // V8 alone would take this cache: it checks the source's length, not its text.
    writeFileSync(bundle, readFileSync(bundle, "utf8").replace("answer: () => 42", "answer: () => 43"));
    const changed = loadAndSave(bundle, cacheDir);
    expect(changed.cache).toBe("stale");
    expect(exportsOf(changed).answer()).toBe(43);
    expect(readFileSync(cacheFile).equals(old)).toBe(false);
    expect(loadBundle(bundle, cacheDir).cache).toBe("used");
  });

  it("ignores a cache made by another node or V8", () => {
    const { bundle, cacheDir, cacheFile } = bundleDir();
    loadAndSave(bundle, cacheDir);
    const made = readFileSync(cacheFile);
    for (const field of ["node", "v8", "arch", "bundle"]) {
      writeFileSync(cacheFile, withHeader(made, { [field]: "other" }));
      const loaded = loadBundle(bundle, cacheDir);
      expect(loaded.cache).toBe("stale");
      expect(exportsOf(loaded).answer()).toBe(42);
    }
  });

  describe("a damaged cache costs the compiling, never the start", () => {
    const damages: [string, (bytes: Buffer) => Buffer][] = [
      [
        "a flipped byte in V8's data",
        (bytes) => Buffer.from(bytes.map((byte, i) => (i === bytes.length - 100 ? byte ^ 0xff : byte))),
      ],
      ["truncated", (bytes) => bytes.subarray(0, Math.floor(bytes.length / 2))],
      ["cut inside its header", (bytes) => bytes.subarray(0, 20)],
      ["empty", () => Buffer.alloc(0)],
      ["garbage with no line end", () => Buffer.alloc(4096, 0x5a)],
      ["a header that is not JSON", (bytes) => Buffer.concat([Buffer.from("{not json\n"), bytes])],
    ];
    for (const [name, damage] of damages) {
      it(`${name}: ignored, and replaced by a good one`, () => {
        const { bundle, cacheDir, cacheFile } = bundleDir();
        loadAndSave(bundle, cacheDir);
        writeFileSync(cacheFile, damage(readFileSync(cacheFile)));
        const loaded = loadAndSave(bundle, cacheDir);
        expect(loaded.cache).toBe("damaged");
        expect(exportsOf(loaded).answer()).toBe(42);
        expect(loadBundle(bundle, cacheDir).cache).toBe("used");
      });
    }

    it("a cache file that is a directory: unreadable and unwritable, and the bundle still runs", () => {
      const { bundle, cacheDir, cacheFile } = bundleDir();
      mkdirSync(cacheFile, { recursive: true });
      const loaded = loadBundle(bundle, cacheDir);
      expect(loaded.cache).toBe("damaged");
      expect(exportsOf(loaded).answer()).toBe(42);
      // The next start compiles again; nothing else changes, and nothing is left behind.
      expect(loaded.saveCache()).toBe(false);
      expect(readdirSync(cacheDir)).toEqual(["bundle.cjs.v8-cache"]);
    });
  });

  it("with no cache directory, runs the bundle and writes nothing", () => {
    const { bundle, cacheDir } = bundleDir();
    const loaded = loadAndSave(bundle, undefined);
    expect(loaded.cache).toBe("absent");
    expect(exportsOf(loaded).answer()).toBe(42);
    expect(existsSync(cacheDir)).toBe(false);
  });

  it("a bundle that throws while loading throws to its caller, as require() would", () => {
    const { bundle, cacheDir } = bundleDir();
    writeFileSync(bundle, 'throw new Error("broken bundle");\n');
    expect(() => loadBundle(bundle, cacheDir)).toThrow("broken bundle");
  });
});
