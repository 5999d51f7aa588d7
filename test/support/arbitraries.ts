import fc from "fast-check";
import type { JsonObject, JsonValue } from "../../server/documents/json-value.js";
import type { OpsBody, OpsCondition, OpsOperation, PatchOperation } from "./document-model.js";
import type { Command } from "./store-model.js";

/*
 * Few ids, few member names and few paths, so that commands keep meeting each other's
 * entities, members and idempotency keys. The ids sort differently by byte than by locale
 * ("B" < "a" < "a.b" < "a_" < "b~"), and `constructor` and escaped names are ordinary members.
 */
export const IDS = ["a", "a.b", "a_", "B", "b~"] as const;
const PREFIXES = ["", "a", "a_", "a.", "B", "b~", "z"] as const;
const MEMBERS = ["a", "b", "n", "list", "constructor", "x/y", "m~n"] as const;
const PATHS = [
  "/a",
  "/b",
  "/n",
  "/list",
  "/list/0",
  "/list/1",
  "/list/-",
  "/a/b",
  "/n/x",
  "/constructor",
  "/x~1y",
  "/m~0n",
] as const;
const KEYS = ["k1", "k2", "k3"] as const;

const scalar: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom<JsonValue>("x", "y", "", null, true, false),
);

const value: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom(...MEMBERS), scalar, { maxKeys: 2 }) as fc.Arbitrary<JsonValue> },
);

const data = fc.dictionary(fc.constantFrom(...MEMBERS), value, { maxKeys: 4 }) as fc.Arbitrary<JsonObject>;

const mergePatch = fc.dictionary(
  fc.constantFrom(...MEMBERS),
  fc.oneof(
    value,
    fc.constant(null),
    fc.dictionary(fc.constantFrom(...MEMBERS), fc.oneof(scalar, fc.constant(null)), { maxKeys: 2 }),
  ),
  { maxKeys: 3 },
) as fc.Arbitrary<JsonObject>;

const path = fc.constantFrom<string>(...PATHS);
const anyPath = fc.oneof({ weight: 9, arbitrary: path }, { weight: 1, arbitrary: fc.constant("") });

const patchOperation: fc.Arbitrary<PatchOperation> = fc.oneof(
  fc.record({ op: fc.constantFrom("add", "replace", "test"), path: anyPath, value }),
  fc.record({ op: fc.constant("remove"), path: anyPath }),
  fc.record({ op: fc.constantFrom("move", "copy"), from: path, path }),
);

const condition: fc.Arbitrary<OpsCondition> = fc.oneof(
  fc.record({ path, op: fc.constantFrom("eq", "ne", "lt", "lte", "gt", "gte"), value: scalar }),
  fc.record({ path, op: fc.constantFrom("exists", "absent") }),
);

/** Mostly small steps, sometimes one that lands on or beyond ±2^53. */
const increment = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: -3, max: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 1e300, 0.5) },
);

const operation: fc.Arbitrary<OpsOperation> = fc.oneof(
  fc.record({ op: fc.constantFrom("set", "append"), path: anyPath, value }),
  fc.record({ op: fc.constant("inc"), path: anyPath, value: increment }),
  fc.record({ op: fc.constant("remove"), path: anyPath }),
);

const opsBody: fc.Arbitrary<OpsBody> = fc.record({
  if: fc.oneof(
    { weight: 2, arbitrary: fc.constant<OpsCondition[]>([]) },
    { weight: 1, arbitrary: fc.array(condition, { minLength: 1, maxLength: 2 }) },
  ),
  do: fc.array(operation, { maxLength: 3 }),
  upsert: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
});

/** `If-Match`: usually a plausible version, sometimes `*`, a weak tag or a list. */
const ifMatch = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 6 }).map((version) => `"${version}"`) },
  { weight: 1, arbitrary: fc.constantFrom("*", 'W/"1"', '"1", "2"', '"9", "3"') },
);

const ifNoneMatch = fc.oneof(
  fc.integer({ min: 1, max: 6 }).map((version) => `"${version}"`),
  fc.integer({ min: 1, max: 6 }).map((version) => `W/"${version}"`),
  fc.constant("*"),
);

const id = fc.constantFrom<string>(...IDS);
/** Present in about one request in `every`. */
const sometimes = <T>(arbitrary: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: every - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });
const key = sometimes(fc.constantFrom<string>(...KEYS), 2);
const precondition = sometimes(ifMatch, 5);

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("get"), id, ifNoneMatch: sometimes(ifNoneMatch, 2) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("put"),
      id,
      data,
      ifMatch: precondition,
      ifNoneMatch: sometimes(fc.constant("*"), 6),
      key,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("mergePatch"), id, patch: mergePatch, ifMatch: precondition, key }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("jsonPatch"),
      id,
      patch: fc.array(patchOperation, { maxLength: 3 }),
      ifMatch: precondition,
      key,
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("ops"), id, body: opsBody, key }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete"), id, ifMatch: precondition, key }) },
) as fc.Arbitrary<Command>;

/** A step of a run: a new command, a list, or an exact repeat of an earlier step (a retry). */
type Step =
  { kind: "command"; command: Command } | { kind: "list"; prefix: string; limit: number } | { kind: "repeat"; back: number };

export const steps: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof(
    { weight: 12, arbitrary: command.map((c): Step => ({ kind: "command", command: c })) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("list" as const),
        prefix: fc.constantFrom<string>(...PREFIXES),
        limit: fc.integer({ min: 1, max: 3 }),
      }),
    },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant("repeat" as const), back: fc.integer({ min: 1, max: 6 }) }) },
  ),
  { minLength: 1, maxLength: 60, size: "medium" },
);
