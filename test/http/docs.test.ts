import { readFileSync } from "node:fs";
import request from "supertest";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { expectProblem } from "../support/problem.js";
import { createTestApp } from "../support/test-app.js";

const OPENAPI_YAML = readFileSync(new URL("../../openapi.yaml", import.meta.url), "utf8");

// Tokens on both planes: the reference must stay open all the same.
const testApp = await createTestApp({ token: "data-secret", adminToken: "admin-secret" });
const app = testApp.app;
afterAll(() => testApp.close());

/** Every `src` and `href` of an HTML page. */
function referencesOf(html: string): string[] {
  return [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((match) => match[1] as string);
}

describe("the API reference", () => {
  it("GET / redirects to /docs", async () => {
    const res = await request(app).get("/").expect(302);
    expect(res.headers.location).toBe("/docs");
  });

  it("GET /openapi.yaml is the server's own openapi.yaml, byte for byte", async () => {
    const res = await request(app)
      .get("/openapi.yaml")
      .buffer(true)
      .parse((r, done) => {
        let text = "";
        r.on("data", (chunk: Buffer) => (text += chunk.toString()));
        r.on("end", () => done(null, text));
      });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/yaml; charset=utf-8");
    expect(res.body).toBe(OPENAPI_YAML);
  });

  it("GET /openapi.json is the same document as JSON", async () => {
    const res = await request(app).get("/openapi.json").expect(200);
    expect(res.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(res.body).toEqual(parseYaml(OPENAPI_YAML));
    expect(res.body.paths["/openapi.json"].get.operationId).toBe("openApiJson");
  });

  it("GET /docs is an HTML page whose every reference is an asset of this server", async () => {
    const res = await request(app).get("/docs").expect(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["content-security-policy"]).toContain("connect-src 'self'");
    expect(res.headers["content-security-policy"]).toContain("script-src 'self';");
    const references = referencesOf(res.text);
    expect(references.length).toBeGreaterThanOrEqual(4);
    for (const reference of references) {
      expect(reference, reference).toMatch(/^\/docs\/[a-z0-9.-]+$/);
      const asset = await request(app).get(reference);
      expect(asset.status, reference).toBe(200);
    }
    expect(references).toContain("/docs/swagger-ui-bundle.js");
  });

  it("serves each asset with its content type", async () => {
    const cases: [string, string][] = [
      ["/docs/swagger-ui.css", "text/css; charset=utf-8"],
      ["/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"],
      ["/docs/apostate-docs.js", "text/javascript; charset=utf-8"],
      ["/docs/favicon-32x32.png", "image/png"],
    ];
    for (const [path, type] of cases) {
      const res = await request(app).get(path).expect(200);
      expect(res.headers["content-type"], path).toBe(type);
    }
  });

  it("the page's script turns off the online validator and reads /openapi.json from this server", async () => {
    const res = await request(app).get("/docs/apostate-docs.js").expect(200);
    expect(res.text).toContain("validatorUrl: null");
    expect(res.text).toContain('fetch("/openapi.json")');
    expect(res.text).not.toMatch(/https?:/);
  });

  it.each([
    ["swagger-ui-dist's demo page", "/docs/index.html"],
    ["its default initializer (the petstore)", "/docs/swagger-initializer.js"],
    ["a source map", "/docs/swagger-ui-bundle.js.map"],
    ["a path out of the folder", "/docs/..%2Fpackage.json"],
    ["a nested path", "/docs/a/b"],
  ])("refuses %s: 404 problem", async (_name, path) => {
    expectProblem(await request(app).get(path), 404, "route-not-found");
  });

  it("refuses other methods: 405 problem", async () => {
    const res = await request(app).post("/openapi.json").send({});
    expectProblem(res, 405, "method-not-allowed");
  });
});
