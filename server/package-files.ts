import { fileURLToPath } from "node:url";

/*
 * Files the server reads beside its code, located from this module. It sits at the top of
 * server/ in the sources, and the build bundles every server module flat into dist/server/, so
 * the same relative paths hold in both.
 */

/** openapi.yaml, the one source of truth for the HTTP contract (`npm run build` copies it into dist/). */
export const OPENAPI_YAML = fileURLToPath(new URL("../openapi.yaml", import.meta.url));

/** The dashboard's files, beside the bundled code too (the build copies them to dist/server/ui/). */
export const UI_DIR = fileURLToPath(new URL("./ui/", import.meta.url));
