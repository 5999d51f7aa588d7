import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { hasChromium, launchChromium, saveScreenshot, watchPage } from "../support/browser.js";
import { startTempServer, type TempServer } from "../support/server-process.js";
import { TestCluster } from "../support/test-cluster.js";

/*
 * The /ui dashboard in Debian's chromium, driven as an operator would: by the labels and roles
 * the page gives its controls. One real server with tokens, then a real cluster of two nodes.
 */

const ADMIN_TOKEN = "admin-secret";
const DATA_TOKEN = "data-secret";
const SEEDED = 80;
/** The dashboard's page of keys. */
const KEY_PAGE = 25;
/** Long enough for two refreshes of the page (every 2 s) on a busy machine. */
const LIVE_TIMEOUT_MS = 15_000;

interface ShardFigures {
  shard: number;
  slots: { from: number; to: number };
  entities: number;
  sequence: number;
}
interface ShardKey {
  type: string;
  id: string;
  slot: number;
  version: number;
}

async function getJson<T>(url: string, token?: string): Promise<T> {
  const answer = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!answer.ok) throw new Error(`GET ${url} answered ${answer.status}`);
  return (await answer.json()) as T;
}

async function putEntity(base: string, id: string, data: object, token?: string): Promise<void> {
  const answer = await fetch(`${base}/v1/entities/item/${id}`, {
    method: "PUT",
    headers: { "content-type": "application/json", ...(token && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(data),
  });
  if (answer.status >= 300) throw new Error(`PUT item/${id} answered ${answer.status}`);
}

async function seed(base: string, count: number, token?: string): Promise<void> {
  for (let i = 0; i < count; i++) await putEntity(base, `i${String(i).padStart(3, "0")}`, { n: i, label: `item ${i}` }, token);
}

/** The text of every cell of each body row of the table named `name`. */
function rowsOf(page: Page, name: string): Promise<string[][]> {
  return page
    .getByRole("table", { name, exact: true })
    .locator("tbody tr")
    .evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent?.trim() ?? "")));
}

/** The activity log's entry that matches `pattern`. */
function activityEntry(page: Page, pattern: RegExp): Locator {
  return page.getByRole("log", { name: "Activity" }).getByRole("listitem").filter({ hasText: pattern });
}

async function logIn(page: Page, tokens: { admin: string; data?: string }): Promise<void> {
  await page.getByLabel("Admin token").fill(tokens.admin);
  await page.getByLabel(/^Data token/).fill(tokens.data ?? "");
  await page.getByRole("button", { name: "Log in" }).click();
}

/** Waits until the page shows the shards (its first refresh is done). */
async function dashboardShown(page: Page): Promise<void> {
  await page.getByRole("table", { name: "Shards" }).locator("tbody tr").first().waitFor();
}

describe.skipIf(!hasChromium)("the dashboard on a server with tokens", () => {
  let server: TempServer;
  let base: string;
  let browser: Browser;
  /** The shard with the most keys, and its keys in the order the admin API lists them. */
  let browsed: { shard: number; keys: ShardKey[] };

  beforeAll(async () => {
    server = await startTempServer({ args: ["--token", DATA_TOKEN, "--admin-token", ADMIN_TOKEN, "--shards", "2"] });
    base = server.server.url;
    browser = await launchChromium();
    await seed(base, SEEDED, DATA_TOKEN);
    const { shards } = await getJson<{ shards: ShardFigures[] }>(`${base}/admin/shards`, ADMIN_TOKEN);
    const fullest = shards.reduce((a, b) => (b.entities > a.entities ? b : a));
    const { items } = await getJson<{ items: ShardKey[] }>(
      `${base}/admin/shards/${fullest.shard}/entities?limit=1000`,
      ADMIN_TOKEN,
    );
    browsed = { shard: fullest.shard, keys: items };
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A new tab (a session of its own) on /ui, watched; logged in unless `tokens` is null. */
  async function openDashboard(tokens: { admin: string; data?: string } | null, expectedStatuses: number[] = []) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const watch = watchPage(page, base, expectedStatuses);
    const res = await page.goto(`${base}/ui`);
    expect(res?.status()).toBe(200);
    if (tokens) {
      await logIn(page, tokens);
      await dashboardShown(page);
    }
    return { page, watch };
  }

  it("refuses a wrong admin token, then a wrong data token, with a clear error, and keeps neither", async () => {
    // The page tries the admin API without a token first (401 here), then each wrong token.
    const { page, watch } = await openDashboard(null, [401]);
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    const alert = page.locator("#login").getByRole("alert");

    await logIn(page, { admin: "not-the-token" });
    await expect.poll(() => alert.textContent()).toBe("The server refused this admin token (401 unauthorized).");
    await saveScreenshot(page, "dashboard-wrong-token");

    await logIn(page, { admin: ADMIN_TOKEN, data: "not-the-data-token" });
    await expect.poll(() => alert.textContent()).toBe("The server refused this data token (401 unauthorized).");

    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    expect(await page.getByRole("table", { name: "Shards" }).isVisible()).toBe(false);
    expect(watch.failures).toEqual([]);
    await page.close();
  });

  it("logs in, keeps the tokens in the tab's session and headers only, and shows every shard's figures", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const watch = watchPage(page, base, [401]);
    const sent: { url: string; authorization: string | undefined }[] = [];
    page.on("request", (req) => sent.push({ url: req.url(), authorization: req.headers().authorization }));
    await page.goto(`${base}/ui`);
    await logIn(page, { admin: ADMIN_TOKEN, data: DATA_TOKEN });
    await dashboardShown(page);

    expect(
      await page.evaluate("[sessionStorage.getItem('apostate.adminToken'), sessionStorage.getItem('apostate.dataToken')]"),
    ).toEqual([ADMIN_TOKEN, DATA_TOKEN]);
    expect(sent.filter(({ url }) => url.includes("secret"))).toEqual([]);
    // The first request tries the admin API without a token; every later one carries it.
    const [probe, ...withToken] = sent.filter(({ url }) => url.startsWith(`${base}/admin/`));
    expect(probe?.authorization).toBeUndefined();
    expect(new Set(withToken.map(({ authorization }) => authorization))).toEqual(new Set([`Bearer ${ADMIN_TOKEN}`]));
    expect(sent.filter(({ url }) => url.startsWith(`${base}/v1/`)).map(({ authorization }) => authorization)).toEqual([
      `Bearer ${DATA_TOKEN}`,
    ]);

    expect(await page.locator("#summary").textContent()).toBe("A single node, on its own · 2 shards");
    const { shards } = await getJson<{ shards: ShardFigures[] }>(`${base}/admin/shards`, ADMIN_TOKEN);
    const rows = await rowsOf(page, "Shards");
    expect(rows.map((cells) => cells.slice(0, 5).concat(cells[7] ?? ""))).toEqual(
      shards.map((shard) => [
        String(shard.shard),
        `${shard.slots.from}–${shard.slots.to}`,
        "local",
        "active",
        String(shard.entities),
        String(shard.sequence),
      ]),
    );
    expect(rows.reduce((sum, cells) => sum + Number(cells[4]), 0)).toBe(SEEDED);
    const slotMap = page.getByRole("list", { name: "Slot map" }).getByRole("listitem");
    expect(await slotMap.allTextContents()).toEqual(
      shards.map((shard) => `${shard.shard}Shard ${shard.shard}: slots ${shard.slots.from}–${shard.slots.to}, on local`),
    );
    expect(await page.getByText("This server runs on its own").isVisible()).toBe(true);

    // Live: writes made elsewhere show up without a reload (the marker would not survive one).
    await page.evaluate("globalThis.notReloaded = true");
    await putEntity(base, "live-1", { live: true }, DATA_TOKEN);
    await putEntity(base, "live-2", { live: true }, DATA_TOKEN);
    await expect
      .poll(async () => (await rowsOf(page, "Shards")).reduce((sum, cells) => sum + Number(cells[4]), 0), {
        timeout: LIVE_TIMEOUT_MS,
      })
      .toBe(SEEDED + 2);
    expect(await page.evaluate("globalThis.notReloaded")).toBe(true);
    await saveScreenshot(page, "dashboard-single");

    // Logging out forgets the tokens and what was shown.
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    expect(await page.locator("#shards tr").count()).toBe(0);
    expect(watch.failures).toEqual([]);
    expect(watch.outside).toEqual([]);
    await page.close();
  });

  it("browses a shard's keys page by page", async () => {
    expect(browsed.keys.length).toBeGreaterThan(KEY_PAGE);
    const { page, watch } = await openDashboard({ admin: ADMIN_TOKEN }, [401]);
    const caption = page.locator("#keys-caption");
    const keyRows = () => rowsOf(page, "Keys");
    const expected = (from: number) =>
      browsed.keys.slice(from, from + KEY_PAGE).map((key) => [key.type, key.id, String(key.slot), String(key.version), "Open"]);

    await page.getByRole("button", { name: `Browse shard ${browsed.shard}` }).click();
    await expect.poll(() => caption.textContent()).toBe(`Shard ${browsed.shard}, page 1: keys 1–${KEY_PAGE}`);
    expect(await keyRows()).toEqual(expected(0));
    expect(await page.getByRole("button", { name: "Previous page" }).isDisabled()).toBe(true);

    await page.getByRole("button", { name: "Next page" }).click();
    await expect.poll(() => caption.textContent()).toMatch(new RegExp(`^Shard ${browsed.shard}, page 2: keys ${KEY_PAGE + 1}–`));
    expect(await keyRows()).toEqual(expected(KEY_PAGE));
    await saveScreenshot(page, "dashboard-keys");

    await page.getByRole("button", { name: "Previous page" }).click();
    await expect.poll(() => caption.textContent()).toBe(`Shard ${browsed.shard}, page 1: keys 1–${KEY_PAGE}`);
    expect(await keyRows()).toEqual(expected(0));
    expect(watch.failures).toEqual([]);
    await page.close();
  });

  it("opens an entity from the keys and shows its JSON, version and timestamps; a missing one is an error", async () => {
    const { page, watch } = await openDashboard({ admin: ADMIN_TOKEN, data: DATA_TOKEN }, [401, 404]);
    const key = browsed.keys[KEY_PAGE] as ShardKey;
    const entity = await getJson<{ version: number; data: object; createdAt: string; updatedAt: string }>(
      `${base}/v1/entities/item/${key.id}`,
      DATA_TOKEN,
    );

    await page.getByRole("button", { name: `Browse shard ${browsed.shard}` }).click();
    await page.getByRole("button", { name: "Next page" }).click();
    await page.getByRole("button", { name: `Open item/${key.id}` }).click();
    const data = page.getByLabel("Entity data");
    await data.waitFor();
    expect(JSON.parse((await data.textContent()) ?? "")).toEqual(entity.data);
    expect(await page.locator("#entity dd").allTextContents()).toEqual([
      `item/${key.id}`,
      String(entity.version),
      entity.createdAt,
      entity.updatedAt,
    ]);
    await saveScreenshot(page, "dashboard-entity");

    await page.getByLabel("Id", { exact: true }).fill("nobody");
    await page.getByRole("button", { name: "Open", exact: true }).click();
    const error = page.locator("#entity-error");
    await expect.poll(() => error.textContent()).toMatch(/^Cannot open item\/nobody: /);
    expect(await data.isVisible()).toBe(false);
    expect(watch.failures).toEqual([]);
    await page.close();
  });

  it("says an entity needs the data token when logged in without one", async () => {
    const { page } = await openDashboard({ admin: ADMIN_TOKEN }, [401]);
    await page.getByLabel("Type").fill("item");
    await page.getByLabel("Id", { exact: true }).fill("i000");
    await page.getByRole("button", { name: "Open", exact: true }).click();
    await expect
      .poll(() => page.locator("#entity-error").textContent())
      .toBe("Cannot open item/i000: reading entities needs the data token: log out, then log in with it");
    await page.close();
  });

  it("runs a check and a backup of a shard and shows their results", async () => {
    const { page, watch } = await openDashboard({ admin: ADMIN_TOKEN }, [401]);
    await page.getByRole("button", { name: "Check shard 0" }).click();
    await activityEntry(page, /Check of shard 0: ok$/).waitFor();

    await page.getByRole("button", { name: "Back up shard 0" }).click();
    const backup = activityEntry(page, /Backup of shard 0: backups\//);
    await backup.waitFor();
    const file = /backups\/(shard-0+-seq\d+-\S+\.sqlite),/.exec((await backup.textContent()) ?? "")?.[1];
    expect(file).toBeDefined();
    expect(existsSync(join(server.dataDir, "backups", file as string))).toBe(true);
    await saveScreenshot(page, "dashboard-check");
    expect(watch.failures).toEqual([]);
    await page.close();
  });

  it("locates a key, present or absent, and shows a refused key's error", async () => {
    const { page, watch } = await openDashboard({ admin: ADMIN_TOKEN }, [400, 401]);
    const { shards } = await getJson<{ shards: ShardFigures[] }>(`${base}/admin/shards`, ADMIN_TOKEN);
    const shardOf = (slot: number) => shards.find(({ slots }) => slots.from <= slot && slot <= slots.to)?.shard;
    const location = page.getByRole("status", { name: "Location" });
    const locate = async (type: string, id: string) => {
      await page.getByLabel("Type").fill(type);
      await page.getByLabel("Id", { exact: true }).fill(id);
      await page.getByRole("button", { name: "Locate" }).click();
    };

    await locate("item", "i003");
    const slot = slotOf("item", "i003");
    await expect
      .poll(() => location.textContent())
      .toBe(`item/i003: slot ${slot}, shard ${shardOf(slot)} on local; the entity exists.`);
    await saveScreenshot(page, "dashboard-locate");

    await locate("item", "absent");
    const absent = slotOf("item", "absent");
    await expect
      .poll(() => location.textContent())
      .toBe(`item/absent: slot ${absent}, shard ${shardOf(absent)} on local; no entity there now.`);

    await locate("Not A Type", "x");
    await expect.poll(() => page.locator("#entity-error").textContent()).toMatch(/^Cannot locate Not A Type\/x: .+/);
    expect(await location.isVisible()).toBe(false);
    expect(watch.failures).toEqual([]);
    await page.close();
  });
});

describe.skipIf(!hasChromium)("the dashboard on a cluster of two nodes", () => {
  let cluster: TestCluster;
  let browser: Browser;

  beforeAll(async () => {
    // No tokens, on loopback: the page skips the login form.
    cluster = await TestCluster.start({ nodes: 2, shards: 4 });
    browser = await launchChromium();
    await seed(cluster.node("n1").url, 120);
  });
  afterAll(async () => {
    await browser?.close();
    await cluster?.destroy();
  });

  it("opens without a login, shows both nodes and the slot map, and moves a shard to done", async () => {
    const n1 = cluster.node("n1").url;
    const n2 = cluster.node("n2").url;
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const watch = watchPage(page, n1);
    await page.goto(`${n1}/ui`);
    await dashboardShown(page);
    expect(await page.getByRole("heading", { name: "Log in" }).isVisible()).toBe(false);

    await expect
      .poll(() => rowsOf(page, "Nodes"))
      .toEqual([
        ["n1 (this node)", n1, "alive", "0, 1, 2, 3"],
        ["n2", n2, "alive", "none"],
      ]);
    const slotMap = page.getByRole("list", { name: "Slot map" }).getByRole("listitem");
    expect(await slotMap.allTextContents()).toEqual([
      "0Shard 0: slots 0–1023, on n1",
      "1Shard 1: slots 1024–2047, on n1",
      "2Shard 2: slots 2048–3071, on n1",
      "3Shard 3: slots 3072–4095, on n1",
    ]);
    expect(await page.locator("#summary").textContent()).toMatch(
      /^Cluster test · this node n1 · map version \d+ · coordinator n1 · 2 nodes, 4 shards$/,
    );

    const form = page.getByRole("form", { name: "Move a shard" });
    await form.getByLabel("Shard").selectOption("1");
    await form.getByLabel("To node").selectOption("n2");
    await form.getByRole("button", { name: "Start move" }).click();
    const move = activityEntry(page, /Move of shard 1 from n1 to n2/);
    await expect.poll(() => move.textContent(), { timeout: 90_000 }).toMatch(/: copying( → [a-z-]+)* → done$/);

    expect((await cluster.status("n1")).shards.find((shard) => shard.shard === 1)?.node).toBe("n2");
    await expect.poll(() => slotMap.nth(1).textContent(), { timeout: LIVE_TIMEOUT_MS }).toBe("1Shard 1: slots 1024–2047, on n2");
    await expect
      .poll(async () => (await rowsOf(page, "Moves")).map((cells) => [cells[1], cells[2], cells[3], cells[4], cells[5]]))
      .toEqual([["move", "1", "n1", "n2", "done"]]);
    const onN2 = page.getByRole("link", { name: "On n2's dashboard" });
    await onN2.waitFor();
    expect(await onN2.getAttribute("href")).toBe(`${n2}/ui`);
    expect((await rowsOf(page, "Nodes")).map((cells) => cells[3])).toEqual(["0, 2, 3", "1"]);

    // Keys of a shard held here; an entity of the moved shard, read through n1, which forwards to n2.
    await page.getByRole("button", { name: "Browse shard 0" }).click();
    await expect.poll(() => page.locator("#keys-caption").textContent()).toMatch(/^Shard 0, page 1: keys 1–25$/);
    const moved = Array.from({ length: 120 }, (_, i) => `i${String(i).padStart(3, "0")}`).find((id) => {
      const slot = slotOf("item", id);
      return slot >= 1024 && slot <= 2047;
    }) as string;
    await page.getByLabel("Type").fill("item");
    await page.getByLabel("Id", { exact: true }).fill(moved);
    await page.getByRole("button", { name: "Open", exact: true }).click();
    const data = page.getByLabel("Entity data");
    await data.waitFor();
    expect(JSON.parse((await data.textContent()) ?? "")).toEqual({
      n: Number(moved.slice(1)),
      label: `item ${Number(moved.slice(1))}`,
    });
    await saveScreenshot(page, "dashboard-cluster");
    await saveScreenshot(page, "dashboard-readme", { fullPage: false });
    expect(watch.failures).toEqual([]);
    expect(watch.outside).toEqual([]);
    await page.close();
  }, 150_000);

  it("splits a shard, then rebalances, watching each to done", async () => {
    const n1 = cluster.node("n1").url;
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const watch = watchPage(page, n1);
    await page.goto(`${n1}/ui`);
    await dashboardShown(page);

    const form = page.getByRole("form", { name: "Split a shard" });
    await form.getByLabel("Shard").selectOption("0");
    await form.getByRole("button", { name: "Split" }).click();
    const split = activityEntry(page, /Split of shard 0 into 0 and 4 on n1/);
    await expect.poll(() => split.textContent(), { timeout: 90_000 }).toMatch(/: copying( → [a-z-]+)* → done$/);
    const slotMap = page.getByRole("list", { name: "Slot map" }).getByRole("listitem");
    await expect.poll(() => slotMap.allTextContents(), { timeout: LIVE_TIMEOUT_MS }).toContain("4Shard 4: slots 512–1023, on n1");

    // n1 holds 0, 2, 3 and 4, n2 holds 1: a fair share is two each, so one shard moves to n2.
    await page.getByRole("button", { name: "Rebalance" }).click();
    const moved = activityEntry(page, /Move of shard \d from n1 to n2/);
    await expect.poll(() => moved.textContent(), { timeout: 90_000 }).toMatch(/: copying( → [a-z-]+)* → done$/);
    const { nodes } = await cluster.status("n1");
    expect(nodes.map((node) => node.shards.length)).toEqual([3, 2]);
    await expect
      .poll(async () => (await rowsOf(page, "Nodes")).map((cells) => cells[3]), { timeout: LIVE_TIMEOUT_MS })
      .toEqual(nodes.map((node) => node.shards.join(", ")));

    await page.getByRole("button", { name: "Rebalance" }).click();
    await activityEntry(page, /Rebalance: nothing to do, the cluster is balanced$/).waitFor();
    await saveScreenshot(page, "dashboard-split-rebalance");
    expect(watch.failures).toEqual([]);
    await page.close();
  }, 200_000);
});
