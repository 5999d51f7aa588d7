import { createServer } from "node:net";

/** Listens on `port` of 127.0.0.1 (0: any free one) and closes again; resolves to the port, or undefined when it is taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(address !== null && typeof address === "object" ? address.port : undefined));
    });
  });
}

/** A loopback port that was free a moment ago, for a program that takes its ports as flags (etcd). */
export async function freePort(): Promise<number> {
  const port = await probe(0);
  if (port === undefined) throw new Error("the system gave no free loopback port");
  return port;
}

export async function isPortFree(port: number): Promise<boolean> {
  return (await probe(port)) !== undefined;
}
