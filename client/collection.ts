import type {
  ApostateClient,
  CallOptions,
  ConditionalOptions,
  Entity,
  EntityData,
  JsonPatch,
  ListOptions,
  ListPageOptions,
  MergePatch,
  ModifyOptions,
  MutationOptions,
  OpsRequest,
  PutOptions,
} from "./apostate-client.js";

/**
 * An entity whose data is typed as `T`.
 *
 * @example
 * const alice: TypedEntity<{ balance: number }> = await db.collection<{ balance: number }>("account").get("alice");
 */
export type TypedEntity<T extends object> = Omit<Entity, "data"> & { data: T };

/**
 * A page of {@link TypedEntity}: `{items, nextCursor}`.
 *
 * @example
 * const { items, nextCursor }: TypedEntityPage<Account> = await accounts.listPage({ limit: 20 });
 */
export interface TypedEntityPage<T extends object> {
  items: TypedEntity<T>[];
  nextCursor: string | null;
}

/*
 * The one place where data crosses between the wire's JSON objects and `T`: the server stores
 * whatever object it is sent, so `T` is a promise the caller makes, not something checked here.
 */
const typed = <T extends object>(entity: Entity) => entity as TypedEntity<T>;
const untyped = <T extends object>(data: T) => data as EntityData;

/**
 * The methods of {@link ApostateClient} for one entity type, with `data` typed as `T`; made by
 * {@link ApostateClient.collection}.
 *
 * @example
 * interface Account { balance: number }
 * const accounts = db.collection<Account>("account");
 * await accounts.modify("alice", (account) => ({ balance: account.balance + 10 }));
 */
export class Collection<T extends object> {
  constructor(
    private readonly db: ApostateClient,
    readonly type: string,
  ) {}

  async get(id: string, options?: CallOptions): Promise<TypedEntity<T>> {
    return typed<T>(await this.db.get(this.type, id, options));
  }

  async put(id: string, data: T, options?: PutOptions): Promise<TypedEntity<T>> {
    return typed<T>(await this.db.put(this.type, id, untyped(data), options));
  }

  async patch(id: string, mergePatch: MergePatch, options?: ConditionalOptions): Promise<TypedEntity<T>> {
    return typed<T>(await this.db.patch(this.type, id, mergePatch, options));
  }

  async jsonPatch(id: string, operations: JsonPatch, options?: ConditionalOptions): Promise<TypedEntity<T>> {
    return typed<T>(await this.db.jsonPatch(this.type, id, operations, options));
  }

  async ops(id: string, body: OpsRequest, options?: MutationOptions): Promise<TypedEntity<T>> {
    return typed<T>(await this.db.ops(this.type, id, body, options));
  }

  delete(id: string, options?: ConditionalOptions): Promise<void> {
    return this.db.delete(this.type, id, options);
  }

  async *list(options?: ListOptions): AsyncGenerator<TypedEntity<T>, void, undefined> {
    for await (const entity of this.db.list(this.type, options)) yield typed<T>(entity);
  }

  async listPage(options?: ListPageOptions): Promise<TypedEntityPage<T>> {
    const page = await this.db.listPage(this.type, options);
    return { items: page.items.map((entity) => typed<T>(entity)), nextCursor: page.nextCursor ?? null };
  }

  async modify(
    id: string,
    fn: (data: T, entity: TypedEntity<T>) => T | Promise<T>,
    options?: ModifyOptions,
  ): Promise<TypedEntity<T>> {
    const entity = await this.db.modify(
      this.type,
      id,
      async (data, current) => untyped(await fn(data as T, typed<T>(current))),
      options,
    );
    return typed<T>(entity);
  }
}
