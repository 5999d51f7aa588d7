import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { operations } from "../../client/generated/openapi.js";
import type { ControlHandler } from "./control-plane.js";
import type { OpenApiDocument } from "./openapi-document.js";
import { ProblemError } from "./problems.js";

/** Where swagger-ui-dist's files are: served from the installed package, so the page works offline. */
const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

/** The only files of swagger-ui-dist the page needs; its demo page and source maps stay private. */
const SWAGGER_UI_ASSETS = new Set(["swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"]);

const INITIALIZER = "apostate-docs.js";

/*
 * The page's own script, from the server rather than inline, so the Content-Security-Policy can
 * forbid inline scripts. "Try it out" must reach the server that served the page, not the
 * default address in `servers`; `validatorUrl: null` removes the badge that sends the whole
 * document to validator.swagger.io.
 */
const INITIALIZER_SCRIPT = `"use strict";
fetch("/openapi.json")
  .then((res) => res.json())
  .then((spec) => {
    spec.servers = [{ url: window.location.origin, description: "the server that served this page" }];
    window.ui = SwaggerUIBundle({
      spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  });
`;

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>apostate API reference</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32" />
    <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/${INITIALIZER}"></script>
  </body>
</html>
`;

/*
 * Nothing on the page may leave the server. Swagger UI sets inline styles and shows its icons
 * as data: URIs, hence the two exceptions.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * The API reference, open like `/healthz`: `/openapi.yaml` (the very file the server validates
 * requests with), `/openapi.json` (the same document as JSON), `/docs` (Swagger UI) and `/`,
 * which redirects there.
 */
export function docsHandlers({ yaml, document }: OpenApiDocument) {
  return {
    root: (_req, res) => {
      // Without express's redirect body: openapi.yaml declares none for the 302.
      res.status(302).location("/docs").end();
    },
    openApiJson: (_req, res) => {
      res.json(document);
    },
    openApiYaml: (_req, res) => {
      // application/yaml: RFC 9512.
      res.type("application/yaml").send(yaml);
    },
    docsPage: (_req, res) => {
      res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
      res.type("html").send(PAGE);
    },
    docsAsset: (req, res) => {
      const asset = req.params.asset ?? "";
      if (asset === INITIALIZER) {
        res.type("text/javascript").send(INITIALIZER_SCRIPT);
        return;
      }
      if (!SWAGGER_UI_ASSETS.has(asset))
        throw new ProblemError("route-not-found", `no such file of the reference page: ${asset}`);
      res.sendFile(join(SWAGGER_UI_DIR, asset), { maxAge: "1d" });
    },
  } satisfies Partial<Record<keyof operations, ControlHandler>>;
}
