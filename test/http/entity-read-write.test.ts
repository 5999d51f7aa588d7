import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectProblem } from "../support/problem.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const put = (path: string, body: unknown) =>
  request(t.app)
    .put(path)
    .send(body as object);

describe("PUT /v1/entities/{type}/{id}", () => {
  it("creates with 201, Location and ETag, then replaces with 200", async () => {
    const created = await put("/v1/entities/account/alice", { balance: 10 });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe("/v1/entities/account/alice");
    expect(created.headers.etag).toBe('"1"');
    expect(created.body).toEqual({
      type: "account",
      id: "alice",
      version: 1,
      data: { balance: 10 },
      createdAt: expect.stringMatching(ISO),
      updatedAt: expect.stringMatching(ISO),
    });

    const replaced = await put("/v1/entities/account/alice", { balance: 20 });
    expect(replaced.status).toBe(200);
    expect(replaced.headers.location).toBeUndefined();
    expect(replaced.headers.etag).toBe('"2"');
    expect(replaced.body).toMatchObject({ version: 2, data: { balance: 20 }, createdAt: created.body.createdAt });
  });

  it("honours If-Match: a match replaces, a mismatch is 412 with the current entity and changes nothing", async () => {
    await put("/v1/entities/account/im", { n: 1 });
    const ok = await request(t.app).put("/v1/entities/account/im").set("If-Match", '"1"').send({ n: 2 });
    expect(ok.status).toBe(200);
    const stale = await request(t.app).put("/v1/entities/account/im").set("If-Match", '"1"').send({ n: 3 });
    expectProblem(stale, 412, "version-mismatch");
    expect(stale.body.current).toMatchObject({ version: 2, data: { n: 2 } });
    const read = await request(t.app).get("/v1/entities/account/im");
    expect(read.body).toMatchObject({ version: 2, data: { n: 2 } });
  });

  it("treats a weak tag in If-Match as no match (strong comparison)", async () => {
    await put("/v1/entities/account/weak", { n: 1 });
    const res = await request(t.app).put("/v1/entities/account/weak").set("If-Match", 'W/"1"').send({ n: 2 });
    expectProblem(res, 412, "version-mismatch");
  });

  it("answers If-Match on an absent entity with 412 and current: null", async () => {
    const res = await request(t.app).put("/v1/entities/account/ghost").set("If-Match", '"1"').send({});
    expectProblem(res, 412, "version-mismatch");
    expect(res.body.current).toBeNull();
    expectProblem(await request(t.app).get("/v1/entities/account/ghost"), 404, "entity-not-found");
  });

  it("creates only once with If-None-Match: *", async () => {
    const first = await request(t.app).put("/v1/entities/account/once").set("If-None-Match", "*").send({ a: 1 });
    expect(first.status).toBe(201);
    const second = await request(t.app).put("/v1/entities/account/once").set("If-None-Match", "*").send({ a: 2 });
    expectProblem(second, 412, "version-mismatch");
    expect(second.body.current).toMatchObject({ version: 1, data: { a: 1 } });
  });

  it("continues the version after a delete, so a stale ETag never matches again", async () => {
    await put("/v1/entities/account/phoenix", { life: 1 });
    await put("/v1/entities/account/phoenix", { life: 1, again: true });
    expect((await request(t.app).delete("/v1/entities/account/phoenix")).status).toBe(204);
    const reborn = await put("/v1/entities/account/phoenix", { life: 2 });
    expect(reborn.status).toBe(201);
    expect(reborn.headers.etag).toBe('"4"');
    expect(reborn.body.version).toBe(4);
    const stale = await request(t.app).put("/v1/entities/account/phoenix").set("If-Match", '"1"').send({});
    expectProblem(stale, 412, "version-mismatch");
  });

  it("stores constructor and prototype as ordinary data", async () => {
    const res = await put("/v1/entities/account/proto", { constructor: { x: 1 }, prototype: [1] });
    expect(res.status).toBe(201);
    const read = await request(t.app).get("/v1/entities/account/proto");
    expect(read.body.data).toEqual({ constructor: { x: 1 }, prototype: [1] });
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe("GET /v1/entities/{type}/{id}", () => {
  it("reads with ETag, and answers 304 to a matching If-None-Match", async () => {
    await put("/v1/entities/doc/readme", { title: "hi" });
    const read = await request(t.app).get("/v1/entities/doc/readme");
    expect(read.status).toBe(200);
    expect(read.headers.etag).toBe('"1"');
    expect(read.headers["content-type"]).toMatch(/^application\/json/);
    expect(read.body).toMatchObject({ type: "doc", id: "readme", version: 1, data: { title: "hi" } });

    const notModified = await request(t.app).get("/v1/entities/doc/readme").set("If-None-Match", '"1"');
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"1"');
    expect(notModified.text).toBe("");

    const modified = await request(t.app).get("/v1/entities/doc/readme").set("If-None-Match", '"7", W/"8"');
    expect(modified.status).toBe(200);
  });

  it("is 404 for an absent or deleted entity", async () => {
    expectProblem(await request(t.app).get("/v1/entities/doc/none"), 404, "entity-not-found");
    await put("/v1/entities/doc/gone", {});
    await request(t.app).delete("/v1/entities/doc/gone");
    expectProblem(await request(t.app).get("/v1/entities/doc/gone"), 404, "entity-not-found");
  });

  it("percent-decodes ids before checking them: both spellings name one entity", async () => {
    const created = await put("/v1/entities/user/a%40b%3Ac", { v: 1 });
    expect(created.status).toBe(201);
    expect(created.body.id).toBe("a@b:c");
    expect(created.headers.location).toBe("/v1/entities/user/a%40b%3Ac");
    const read = await request(t.app).get("/v1/entities/user/a@b:c");
    expect(read.status).toBe(200);
    expect(read.body.id).toBe("a@b:c");
  });
});

describe("DELETE /v1/entities/{type}/{id}", () => {
  it("deletes with 204 and no body, then 404", async () => {
    await put("/v1/entities/doc/del", { a: 1 });
    const res = await request(t.app).delete("/v1/entities/doc/del");
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    expectProblem(await request(t.app).delete("/v1/entities/doc/del"), 404, "entity-not-found");
  });

  it("honours If-Match, and keeps the entity on a mismatch", async () => {
    await put("/v1/entities/doc/delim", { a: 1 });
    const stale = await request(t.app).delete("/v1/entities/doc/delim").set("If-Match", '"9"');
    expectProblem(stale, 412, "version-mismatch");
    expect(stale.body.current).toMatchObject({ version: 1 });
    expect((await request(t.app).get("/v1/entities/doc/delim")).status).toBe(200);
    expect((await request(t.app).delete("/v1/entities/doc/delim").set("If-Match", '"1"')).status).toBe(204);
  });
});
