import { readFileSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { hasChromium, launchChromium, saveScreenshot, watchPage } from "../support/browser.js";
import { startTempServer, type TempServer } from "../support/server-process.js";

const HTTP_METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options", "trace"]);

/** Every operation of openapi.yaml, as Swagger UI names its blocks: `<method> <path>`. */
function operationsOfOpenApi(): string[] {
  const document = parseYaml(readFileSync(new URL("../../openapi.yaml", import.meta.url), "utf8")) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => HTTP_METHODS.has(key))
      .map((method) => `${method} ${path}`),
  );
}

describe.skipIf(!hasChromium)("the docs page in a real browser", () => {
  let server: TempServer;
  let browser: Browser;

  beforeAll(async () => {
    server = await startTempServer({ args: ["--token", "data-secret", "--admin-token", "admin-secret"] });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("renders every operation of openapi.yaml, loading nothing from outside the server", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const { failures, outside } = watchPage(page, server.server.url);

    const res = await page.goto(`${server.server.url}/`);
    expect(res?.status()).toBe(200);
    expect(page.url()).toBe(`${server.server.url}/docs`);

    const expected = operationsOfOpenApi();
    await page
      .locator(".opblock")
      .nth(expected.length - 1)
      .waitFor({ timeout: 30_000 });
    const rendered = await page
      .locator(".opblock")
      .evaluateAll((blocks) =>
        blocks.map(
          (block) =>
            `${block.querySelector(".opblock-summary-method")?.textContent?.toLowerCase()} ${block.querySelector(".opblock-summary-path")?.getAttribute("data-path")}`,
        ),
      );
    expect(rendered.sort()).toEqual(expected.sort());
    expect(await page.locator(".info .title").innerText()).toContain("apostate");
    // "Try it out" must reach this server, not the default address written in openapi.yaml.
    expect(await page.locator(".servers select").inputValue()).toBe(server.server.url);

    await saveScreenshot(page, "docs");

    expect(outside).toEqual([]);
    expect(failures).toEqual([]);
    await page.close();
  });
});
