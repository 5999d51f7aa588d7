import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { OPENAPI_YAML } from "../package-files.js";

/** The parsed document, written beside the copy of openapi.yaml in dist/ by `npm run build`. */
const OPENAPI_JSON = OPENAPI_YAML.replace(/\.yaml$/, ".json");

/** openapi.yaml as the server reads it: the text it serves and the document it validates with. */
export interface OpenApiDocument {
  yaml: string;
  document: Record<string, unknown>;
}

/** What the build writes to openapi.json: the document, and the digest of the YAML text it was parsed from. */
interface ParsedCopy {
  yamlSha256: string;
  document: Record<string, unknown>;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The text of openapi.json for `yaml` parsed into `document` (the build calls this). */
export function parsedCopy(yaml: string, document: unknown): string {
  return JSON.stringify({ yamlSha256: sha256(yaml), document });
}

let loaded: Promise<OpenApiDocument> | undefined;

/**
 * The document, read once per process. Loading the YAML parser and parsing the document cost a
 * good share of a worker's start-up, so the build's parsed copy is read instead when it was
 * parsed from this very text. The check is by content: npm resets the files' times when it
 * installs a package, and an edited openapi.yaml must never be shadowed by an old copy (in a
 * source checkout there is no copy at all).
 */
export function loadOpenApiDocument(): Promise<OpenApiDocument> {
  loaded ??= (async () => {
    const yaml = readFileSync(OPENAPI_YAML, "utf8");
    const copy = readParsedCopy();
    const document =
      copy?.yamlSha256 === sha256(yaml) ? copy.document : ((await import("yaml")).parse(yaml) as Record<string, unknown>);
    return { yaml, document };
  })();
  return loaded;
}

function readParsedCopy(): ParsedCopy | undefined {
  try {
    return JSON.parse(readFileSync(OPENAPI_JSON, "utf8")) as ParsedCopy;
  } catch {
    // No copy (the sources), or a damaged one: the YAML is the source of truth either way.
    return undefined;
  }
}
