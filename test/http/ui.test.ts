import { readFileSync } from "node:fs";
import request from "supertest";
import { afterAll, describe, expect, it } from "vitest";
import { expectProblem } from "../support/problem.js";
import { createTestApp } from "../support/test-app.js";

// Tokens on both planes: the page stays open all the same; what it shows needs the admin token.
const testApp = await createTestApp({ token: "data-secret", adminToken: "admin-secret" });
const app = testApp.app;
afterAll(() => testApp.close());

const UI_DIR = new URL("../../server/ui/", import.meta.url);

/** Every `src` and `href` of an HTML page. */
function referencesOf(html: string): string[] {
  return [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((match) => match[1] as string);
}

describe("the dashboard's page and files", () => {
  it("GET /ui is the page, open without a token, under a policy that lets nothing but this server's files run", async () => {
    const res = await request(app).get("/ui").expect(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.text).toBe(readFileSync(new URL("index.html", UI_DIR), "utf8"));
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    const policy = String(res.headers["content-security-policy"]).split("; ");
    expect(policy).toEqual(
      expect.arrayContaining([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
      ]),
    );
    expect(policy.join(" ")).not.toContain("unsafe");
  });

  it("references only its own files, each served with its content type", async () => {
    const page = await request(app).get("/ui").expect(200);
    const references = referencesOf(page.text).sort();
    expect(references).toEqual(["/ui/dashboard.css", "/ui/dashboard.js", "/ui/favicon.svg"]);
    const types: Record<string, string> = {
      "/ui/dashboard.css": "text/css; charset=utf-8",
      "/ui/dashboard.js": "text/javascript; charset=utf-8",
      "/ui/favicon.svg": "image/svg+xml",
    };
    for (const reference of references) {
      const res = await request(app).get(reference).buffer(true);
      expect(res.status, reference).toBe(200);
      expect(res.headers["content-type"], reference).toBe(types[reference]);
      expect(String(res.text ?? res.body), reference).toBe(readFileSync(new URL(reference.slice("/ui/".length), UI_DIR), "utf8"));
    }
  });

  it("the script calls only this server, and keeps tokens out of URLs and localStorage", async () => {
    const script = (await request(app).get("/ui/dashboard.js").expect(200)).text;
    expect(script).not.toMatch(/https?:\/\//);
    expect(script).not.toContain("localStorage");
    expect(script).toContain("sessionStorage");
    expect(script).toContain("authorization");
  });

  it("answers HEAD like GET, without a body", async () => {
    const res = await request(app).head("/ui/dashboard.js").expect(200);
    expect(res.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(res.text).toBeUndefined();
  });

  it.each([
    ["its TypeScript settings", "/ui/tsconfig.json"],
    ["a file it does not have", "/ui/app.js"],
    ["a path out of the folder", "/ui/..%2Fhttp%2Fui-routes.ts"],
    ["a nested path", "/ui/a/b"],
  ])("refuses %s: 404 problem", async (_name, path) => {
    expectProblem(await request(app).get(path), 404, "route-not-found");
  });

  it("refuses other methods: 405 problem", async () => {
    expectProblem(await request(app).post("/ui").send({}), 405, "method-not-allowed");
  });

  it("the admin API it calls still needs the admin token", async () => {
    expectProblem(await request(app).get("/admin/cluster"), 401, "unauthorized");
    await request(app).get("/admin/cluster").set("authorization", "Bearer admin-secret").expect(200);
  });
});
