/**
 * The forwarding baseline of `npm run bench -- --cluster`: bare node:http passing every request
 * on to one server over a keep-alive pool and streaming its answer back, with nothing else (no
 * routing, request log, metrics or validation), in one worker as a cluster node has. Next to a
 * node that forwards, it tells what the hop itself costs from what apostate adds to it.
 *
 * @example
 * node --import tsx bench/proxy-server.ts http://127.0.0.1:8080
 */
import { Agent, createServer, request } from "node:http";
import { runCluster } from "./cluster.js";

const [target] = process.argv.slice(2);
if (target === undefined || !URL.canParse(target)) throw new Error("usage: proxy-server.ts <target URL>");
const { host } = new URL(target);

runCluster(1, () => {
  // As many sockets as the bench has connections, as apostate's forwarder keeps per node.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  createServer((req, res) => {
    const upstream = request(new URL(req.url ?? "/", target), { method: req.method, headers: { ...req.headers, host }, agent });
    upstream.once("response", (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.once("error", () => res.destroy());
    req.pipe(upstream);
  }).listen(0, "127.0.0.1");
});
