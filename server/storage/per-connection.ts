import type Database from "better-sqlite3";

/**
 * `make` run once per connection and kept with it (weakly, so it goes when the connection does):
 * statements that a path prepares for every call otherwise, such as a follower's for each batch
 * its owner ships.
 *
 * @example
 * const statements = perConnection((db) => ({ state: db.prepare("select sequence from shard_state") }));
 * statements(db).state.get();
 */
export function perConnection<T>(make: (db: Database.Database) => T): (db: Database.Database) => T {
  const made = new WeakMap<Database.Database, T>();
  return (db) => {
    let found = made.get(db);
    if (found === undefined) made.set(db, (found = make(db)));
    return found;
  };
}
