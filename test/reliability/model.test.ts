import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTempServer, type ServerProcess } from "../support/server-process.js";
import { IDS, steps } from "../support/arbitraries.js";
import { canonical } from "../support/document-model.js";
import { checkReply } from "../support/contract.js";
import { send } from "../support/http.js";
import { listAll } from "../support/list.js";
import { propertyParameters, setting } from "../support/settings.js";
import { prepare, StoreModel, type Command } from "../support/store-model.js";

/*
 * Model-based test: random command sequences against a live server with two workers (each
 * request on a new connection, so consecutive requests land on different workers) and
 * against StoreModel. Every answer must be the model's: status, version, data, headers,
 * problem code, `current`, `failed`, and byte-identical replays. Every exchange is also held
 * against openapi.yaml (support/contract.ts).
 */

let server: ServerProcess;
let stop: () => Promise<void>;
beforeAll(async () => {
  ({ server, stop } = await startTempServer({ workers: 2 }));
});
afterAll(() => stop?.());

async function run(model: StoreModel, command: Command): Promise<void> {
  const request = prepare(model.type, command);
  const reply = await send(server.url, request.method, request.path, request.options);
  await checkReply(request.method, request.path, request.options, reply);
  model.check(command, request, reply);
}

async function expectListing(model: StoreModel, prefix: string, limit: number): Promise<void> {
  const listed = await listAll(server.url, model.type, prefix, limit);
  const expected = model.listing(prefix).map((entity) => ({ ...entity, data: canonical(entity.data) }));
  expect(listed, `list prefix=${JSON.stringify(prefix)} limit=${limit}`).toEqual(expected);
}

// Every run gets a type of its own, so runs (and shrinking's re-runs) never see each other's data.
let runs = 0;

it(
  "every answer of random command sequences matches the model",
  async () => {
    await fc.assert(
      fc.asyncProperty(steps, async (sequence) => {
        runs += 1;
        const model = new StoreModel(`model-${runs}`);
        const history: Command[] = [];
        for (const step of sequence) {
          if (step.kind === "list") {
            await expectListing(model, step.prefix, step.limit);
            continue;
          }
          const command = step.kind === "command" ? step.command : history.at(-Math.min(step.back, history.length));
          if (command === undefined) continue;
          history.push(command);
          await run(model, command);
        }
        for (const id of IDS) await run(model, { kind: "get", id });
        await expectListing(model, "", 1000);
      }),
      propertyParameters(40),
    );
  },
  setting(100_000, 1_200_000),
);
