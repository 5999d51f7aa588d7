import type { operations } from "../../client/generated/openapi.js";
import { UI_DIR } from "../package-files.js";
import type { ControlHandler } from "./control-plane.js";
import { ProblemError } from "./problems.js";

/** Every file the page loads; nothing else of the folder (its tsconfig.json) is served. */
const UI_ASSETS = new Set(["dashboard.js", "dashboard.css", "favicon.svg"]);

/*
 * Nothing on the page may leave the server, and no script or style may come from anywhere but
 * its own files: the admin token lives in this page's session, so an injected script must not run.
 * The forms are handled by the script, never submitted, hence `form-action 'none'`.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * The operator's dashboard, `/ui`: an open page, like `/docs`, that asks for the tokens itself
 * and works through `/admin` and `/v1`. Its files are revalidated on every load (no max-age), so
 * an upgraded server never runs with a cached script of an older one.
 */
export function uiHandlers() {
  return {
    uiPage: (_req, res) => {
      res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
      res.setHeader("Referrer-Policy", "no-referrer");
      res.sendFile("index.html", { root: UI_DIR });
    },
    uiAsset: (req, res) => {
      const asset = req.params.asset ?? "";
      if (!UI_ASSETS.has(asset)) throw new ProblemError("route-not-found", `no such file of the dashboard: ${asset}`);
      res.sendFile(asset, { root: UI_DIR });
    },
  } satisfies Partial<Record<keyof operations, ControlHandler>>;
}
