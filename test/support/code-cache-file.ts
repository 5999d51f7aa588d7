/** A code cache file's bytes (server/code-cache.ts) with fields of its header line changed. */
export function withHeader(bytes: Buffer, fields: Record<string, string>): Buffer {
  const lineEnd = bytes.indexOf(0x0a);
  const header = JSON.parse(bytes.subarray(0, lineEnd).toString()) as Record<string, string>;
  return Buffer.concat([Buffer.from(`${JSON.stringify({ ...header, ...fields })}\n`), bytes.subarray(lineEnd + 1)]);
}
