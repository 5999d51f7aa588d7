import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";

/** Debian's chromium; CI installs it (.ci/run). Playwright's own browser download is never used. */
const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = new URL("../../test-output/", import.meta.url);

/** Whether the browser tests can run here; they are skipped (with a warning) when not. */
export const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`test/browser skipped: no ${CHROMIUM} (apt-get install chromium)`);

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true });
}

/** Saves a screenshot of the page as test-output/<name>.png, and returns its path. */
export async function saveScreenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = new URL(`${name}.png`, SCREENSHOTS).pathname;
  await page.screenshot({ path, fullPage: options.fullPage ?? true });
  return path;
}

/**
 * Records what a page does wrong: script errors, console errors, and requests to anywhere but
 * `origin`. Chromium logs every refused request as a console error ("Failed to load resource");
 * `expectedStatuses` are the refusals a test provokes on purpose (a wrong token, a missing entity).
 */
export function watchPage(page: Page, origin: string, expectedStatuses: number[] = []) {
  const failures: string[] = [];
  const outside: string[] = [];
  const refusal = new RegExp(`^Failed to load resource: the server responded with a status of (${expectedStatuses.join("|")}) `);
  page.on("request", (req) => {
    if (!req.url().startsWith(`${origin}/`)) outside.push(req.url());
  });
  page.on("pageerror", (error) => failures.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && !(expectedStatuses.length && refusal.test(message.text()))) failures.push(message.text());
  });
  return { failures, outside };
}
