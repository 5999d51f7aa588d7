import { GRPCResourceExhastedError, GRPCInvalidArgumentError } from "etcd3";
import { describe, expect, it } from "vitest";
import { retryWhileRecoverable } from "../../server/cluster/etcd-client.js";

/** A step that fails with each of `errors` in turn, then answers "joined"; counts its calls. */
function failing(...errors: Error[]) {
  const step = {
    calls: 0,
    run: async () => {
      step.calls += 1;
      const error = errors[step.calls - 1];
      if (error) throw error;
      return "joined";
    },
  };
  return step;
}

describe("a start-up step against an overloaded etcd", () => {
  it("is tried again while etcd answers with an error etcd3 calls recoverable", async () => {
    const step = failing(
      new GRPCResourceExhastedError("etcdserver: too many requests"),
      new GRPCResourceExhastedError("etcdserver: too many requests"),
    );
    await expect(retryWhileRecoverable(step.run)).resolves.toBe("joined");
    expect(step.calls).toBe(3);
  });

  it("fails at once on any other error", async () => {
    const step = failing(new GRPCInvalidArgumentError("etcdserver: key is not provided"));
    await expect(retryWhileRecoverable(step.run)).rejects.toThrow("key is not provided");
    expect(step.calls).toBe(1);
    const plain = failing(new Error("node id n1 is taken"));
    await expect(retryWhileRecoverable(plain.run)).rejects.toThrow("is taken");
    expect(plain.calls).toBe(1);
  });
});
