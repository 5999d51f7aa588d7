/** A call to another node's admin API failed: it could not be reached, or answered other than 2xx. */
export class NodeCallError extends Error {}

/**
 * One call from node to node (or coordinator to node) on the admin API, with the admin token the
 * nodes of a cluster share; resolves to the parsed JSON answer (undefined for a 204).
 */
export async function callNode(
  base: string,
  method: string,
  path: string,
  options: { adminToken: string | undefined; body?: object; timeoutMs?: number; signal?: AbortSignal },
): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (options.adminToken) headers.authorization = `Bearer ${options.adminToken}`;
  if (options.body) headers["content-type"] = "application/json";
  const signals = [
    ...(options.timeoutMs !== undefined ? [AbortSignal.timeout(options.timeoutMs)] : []),
    ...(options.signal ? [options.signal] : []),
  ];
  let answer: Response;
  try {
    answer = await fetch(new URL(path, base), {
      method,
      headers,
      ...(options.body && { body: JSON.stringify(options.body) }),
      ...(signals.length > 0 && { signal: AbortSignal.any(signals) }),
    });
  } catch (error) {
    throw new NodeCallError(`${method} ${base}${path}: ${(error as Error).message}`, { cause: error });
  }
  if (answer.status === 204) return undefined;
  const text = await answer.text();
  if (answer.status !== 200) throw new NodeCallError(`${method} ${base}${path} answered ${answer.status}: ${text}`);
  return JSON.parse(text) as unknown;
}
