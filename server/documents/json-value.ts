import type { components } from "../../client/generated/openapi.js";

/** A value as JSON.parse produces it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export type OpsRequest = components["schemas"]["OpsRequest"];
export type Condition = components["schemas"]["Condition"];
export type Operation = components["schemas"]["Operation"];
export type JsonPatchOperation = components["schemas"]["JsonPatchOperation"];
export type ConditionFailure = components["schemas"]["ConditionFailure"];

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
