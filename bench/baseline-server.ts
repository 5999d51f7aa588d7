/**
 * The baselines `npm run bench` compares apostate with: the same fixed JSON answered by express 5
 * and by bare node:http, on the same cluster layout (one process per worker, sharing one port),
 * so the ratio shows what apostate adds on top of its own stack.
 *
 * @example
 * node --import tsx bench/baseline-server.ts express 2 '{"a":1}'
 */
import { createServer } from "node:http";
import express from "express";
import { runCluster } from "./cluster.js";

const [kind, workersArg, body = "{}"] = process.argv.slice(2);
const workers = Number(workersArg);
if ((kind !== "express" && kind !== "http") || !Number.isInteger(workers) || workers < 1) {
  throw new Error("usage: baseline-server.ts express|http <workers> [json]");
}

runCluster(workers, () => {
  if (kind === "express") {
    const app = express();
    app.disable("x-powered-by");
    // apostate turns express's body-hash ETag off too; keep the work the same.
    app.set("etag", false);
    app.use((_req, res) => {
      res.type("application/json").send(body);
    });
    app.listen(0, "127.0.0.1");
  } else {
    const length = String(Buffer.byteLength(body));
    createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json; charset=utf-8", "Content-Length": length });
      res.end(body);
    }).listen(0, "127.0.0.1");
  }
});
