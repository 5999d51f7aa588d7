// @ts-check
/*
 * The dashboard: one ES module, no framework, no build. It talks to the server that served it,
 * through the admin API (and /v1 to open an entity), and keeps the tokens in this tab's
 * sessionStorage only. Tables are updated row by row, by key, so a refresh every couple of
 * seconds keeps focus and selection where the operator left them.
 */

/** @typedef {import("../../client/generated/openapi.js").components["schemas"]} Schemas */
/** @typedef {import("../../client/generated/openapi.js").operations} Operations */
/** @typedef {Schemas["ClusterStatus"]} ClusterStatus */
/** @typedef {ClusterStatus["shards"][number]} MapShard */
/** @typedef {ClusterStatus["nodes"][number]} ClusterNode */
/** @typedef {Schemas["ShardInfo"]} ShardInfo */
/** @typedef {Schemas["Move"]} Move */
/** @typedef {Schemas["ShardKey"]} ShardKey */
/** @typedef {Schemas["Entity"]} Entity */
/** @typedef {Operations["listShardKeys"]["responses"][200]["content"]["application/json"]} KeyPage */
/** @typedef {Operations["locateEntity"]["responses"][200]["content"]["application/json"]} KeyLocation */
/** @typedef {Operations["checkShard"]["responses"][200]["content"]["application/json"]} CheckResult */
/** @typedef {Operations["backupShard"]["responses"][200]["content"]["application/json"]} BackupResult */
/** @typedef {"admin" | "data"} Plane */

const REFRESH_MS = 2_000;
const MOVE_POLL_MS = 1_000;
const KEY_PAGE_SIZE = 25;
const ACTIVITY_LIMIT = 50;
const SLOT_COUNT = 4096;
/** As many owner colours as dashboard.css defines (.owner-0 … .owner-7). */
const OWNER_COLOURS = 8;
/** @type {Record<Plane, string>} */
const TOKEN_KEYS = { admin: "apostate.adminToken", data: "apostate.dataToken" };
const FINISHED = new Set(["done", "aborted"]);

/** A refusal by the server, with its problem document's detail when it sent one. */
class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{ detail?: string, title?: string } | undefined} problem
   */
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `the server answered ${status}`);
    this.status = status;
  }
}

/**
 * One request to this server, answered as parsed JSON; an error status rejects with ApiError.
 * The token is the plane's stored one unless `token` is given (while logging in).
 *
 * @template T
 * @param {string} path
 * @param {{ method?: string, body?: object, plane?: Plane, token?: string }} [options]
 * @returns {Promise<T>}
 */
async function call(path, options = {}) {
  const { method = "GET", body, plane = "admin" } = options;
  const token = options.token ?? sessionStorage.getItem(TOKEN_KEYS[plane]) ?? "";
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, cache: "no-store", ...(body && { body: JSON.stringify(body) }) });
  const text = await res.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}

/** @param {unknown} error */
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

/**
 * @template {Element} E
 * @param {string} id
 * @param {new () => E} kind
 * @returns {E}
 */
function byId(id, kind) {
  const found = document.getElementById(id);
  if (!(found instanceof kind)) throw new Error(`the page has no ${kind.name} #${id}`);
  return found;
}

/**
 * @template {Element} E
 * @param {HTMLFormElement} form
 * @param {string} name
 * @param {new () => E} kind
 * @returns {E}
 */
function field(form, name, kind) {
  const found = form.elements.namedItem(name);
  if (!(found instanceof kind)) throw new Error(`the form #${form.id} has no ${kind.name} ${name}`);
  return found;
}

/**
 * @param {string} tag
 * @param {Record<string, string>} [attributes]
 * @param {(Node | string)[]} children
 */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** Sets the text only when it changed, so screen readers and selections are left alone. @param {Element} element @param {string} text */
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/**
 * Keeps a container's children in step with `items`, by key: a child that stays is updated in
 * place (and keeps its focus), new ones are created, gone ones removed.
 *
 * @template T
 * @param {Element} container
 * @param {T[]} items
 * @param {(item: T) => string} keyOf
 * @param {(item: T) => HTMLElement} create
 * @param {(element: HTMLElement, item: T) => void} update
 */
function syncChildren(container, items, keyOf, create, update) {
  /** @type {Map<string, HTMLElement>} */
  const existing = new Map();
  for (const child of container.children) {
    if (child instanceof HTMLElement && child.dataset.key !== undefined) existing.set(child.dataset.key, child);
  }
  const wanted = items.map((item) => {
    const key = keyOf(item);
    let element = existing.get(key);
    existing.delete(key);
    if (!element) {
      element = create(item);
      element.dataset.key = key;
    }
    update(element, item);
    return element;
  });
  for (const gone of existing.values()) gone.remove();
  wanted.forEach((element, index) => {
    if (container.children[index] !== element) container.insertBefore(element, container.children[index] ?? null);
  });
}

/**
 * Replaces a select's options when they changed, keeping the chosen value while it is offered.
 * @param {HTMLSelectElement} select
 * @param {{ value: string, label: string }[]} options
 */
function syncOptions(select, options) {
  const current = [...select.options].map((option) => `${option.value}\n${option.text}`).join("\n\n");
  if (current === options.map(({ value, label }) => `${value}\n${label}`).join("\n\n")) return;
  const chosen = select.value;
  select.replaceChildren(...options.map(({ value, label }) => new Option(label, value, false, value === chosen)));
}

/** @param {number} bytes */
function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** @param {string | null} iso */
function formatAgo(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

/** @param {{ from: number, to: number }} slots */
function formatSlots({ from, to }) {
  return `${from}–${to}`;
}

const page = {
  summary: byId("summary", HTMLElement),
  freshness: byId("freshness", HTMLElement),
  logout: byId("logout", HTMLButtonElement),
  login: byId("login", HTMLElement),
  loginForm: byId("login-form", HTMLFormElement),
  loginError: byId("login-error", HTMLElement),
  dashboard: byId("dashboard", HTMLElement),
  refreshError: byId("refresh-error", HTMLElement),
  nodes: byId("nodes", HTMLTableSectionElement),
  slotMap: byId("slot-map", HTMLOListElement),
  owners: byId("owners", HTMLUListElement),
  shards: byId("shards", HTMLTableSectionElement),
  noCluster: byId("no-cluster", HTMLElement),
  clusterPart: byId("cluster-part", HTMLElement),
  moveForm: byId("move-form", HTMLFormElement),
  splitForm: byId("split-form", HTMLFormElement),
  rebalance: byId("rebalance", HTMLButtonElement),
  moves: byId("moves", HTMLTableSectionElement),
  keysForm: byId("keys-form", HTMLFormElement),
  keysCaption: byId("keys-caption", HTMLElement),
  keys: byId("keys", HTMLTableSectionElement),
  keysFirst: byId("keys-first", HTMLButtonElement),
  keysPrevious: byId("keys-previous", HTMLButtonElement),
  keysNext: byId("keys-next", HTMLButtonElement),
  entityForm: byId("entity-form", HTMLFormElement),
  entityError: byId("entity-error", HTMLElement),
  location: byId("location", HTMLElement),
  entity: byId("entity", HTMLElement),
  entityKey: byId("entity-key", HTMLElement),
  entityVersion: byId("entity-version", HTMLElement),
  entityCreated: byId("entity-created", HTMLElement),
  entityUpdated: byId("entity-updated", HTMLElement),
  entityData: byId("entity-data", HTMLElement),
  activity: byId("activity", HTMLOListElement),
};

const view = {
  loggedIn: false,
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
  /** @type {ClusterStatus | undefined} */
  cluster: undefined,
  /** @type {Map<number, ShardInfo>} */
  figures: new Map(),
  /** The shard being browsed, its page shown, the cursor each page up to it starts after (the first's is null), and the next's. */
  keys: { shard: -1, index: 0, cursors: /** @type {(string | null)[]} */ ([null]), next: /** @type {string | null} */ (null) },
};

/** The name this node has in the map: its id in a cluster, `local` on its own. */
function thisNode() {
  return view.cluster?.node ?? "local";
}

/** @param {string} node */
function ownerClass(node) {
  const index = view.cluster?.nodes.findIndex((entry) => entry.node === node) ?? -1;
  return `owner-${Math.max(0, index) % OWNER_COLOURS}`;
}

/** Adds a line to the activity log; the returned function replaces its text (for work that goes on). @param {string} text */
function activity(text) {
  const time = new Date();
  const message = h("span", {}, text);
  page.activity.prepend(h("li", {}, h("time", { datetime: time.toISOString() }, time.toLocaleTimeString()), " ", message));
  while (page.activity.children.length > ACTIVITY_LIMIT) page.activity.lastElementChild?.remove();
  return (/** @type {string} */ next) => setText(message, next);
}

// --- the live view -----------------------------------------------------------------------------

function renderSummary() {
  const cluster = view.cluster;
  if (!cluster) return;
  const shards = `${cluster.shards.length} shard${cluster.shards.length === 1 ? "" : "s"}`;
  setText(
    page.summary,
    cluster.cluster === null
      ? `A single node, on its own · ${shards}`
      : `Cluster ${cluster.cluster} · this node ${cluster.node} · map version ${cluster.mapVersion} · coordinator ${cluster.coordinator ?? "none"} · ${cluster.nodes.length} nodes, ${shards}`,
  );
}

function renderNodes() {
  const cluster = view.cluster;
  if (!cluster) return;
  syncChildren(
    page.nodes,
    cluster.nodes,
    (node) => node.node,
    () => h("tr", {}, h("th", { scope: "row" }), h("td"), h("td"), h("td")),
    (row, node) => {
      const [name, address, alive, shards] = /** @type {HTMLTableCellElement[]} */ ([...row.children]);
      if (!name || !address || !alive || !shards) return;
      setText(name, node.node === thisNode() && cluster.cluster !== null ? `${node.node} (this node)` : node.node);
      const link = node.url && node.node !== thisNode() ? `${node.url}/ui` : "";
      if (address.dataset.link !== link) {
        address.dataset.link = link;
        address.replaceChildren(link ? h("a", { href: link }, node.url ?? "") : (node.url ?? "this server"));
      }
      setText(alive, node.alive ? "alive" : "down");
      alive.className = node.alive ? "alive" : "down";
      setText(shards, node.shards.length ? node.shards.join(", ") : "none");
    },
  );
}

function renderSlotMap() {
  const cluster = view.cluster;
  if (!cluster) return;
  syncChildren(
    page.slotMap,
    cluster.shards,
    (shard) => String(shard.shard),
    () => h("li", {}, h("span", { "aria-hidden": "true" }), h("span", { class: "visually-hidden" })),
    (item, shard) => {
      const [number, label] = [...item.children];
      if (!number || !label) return;
      const description = `Shard ${shard.shard}: slots ${formatSlots(shard.slots)}, on ${shard.node}${shard.state === "active" ? "" : ` (${shard.state})`}`;
      setText(number, String(shard.shard));
      setText(label, description);
      item.title = description;
      item.className = `${ownerClass(shard.node)} ${shard.state}`;
      // CSSOM, not a style attribute: the page's Content-Security-Policy allows no inline styles.
      item.style.left = `${(shard.slots.from / SLOT_COUNT) * 100}%`;
      item.style.width = `${((shard.slots.to - shard.slots.from + 1) / SLOT_COUNT) * 100}%`;
    },
  );
  syncChildren(
    page.owners,
    cluster.nodes,
    (node) => node.node,
    () => h("li", {}, h("span", { class: "swatch", "aria-hidden": "true" }), h("span")),
    (item, node) => {
      const [swatch, name] = [...item.children];
      if (!swatch || !name) return;
      swatch.className = `swatch ${ownerClass(node.node)}`;
      setText(name, node.node);
    },
  );
}

/** @param {HTMLTableCellElement} cell @param {MapShard} shard @param {ClusterNode | undefined} owner */
function renderShardActions(cell, shard, owner) {
  const here = shard.node === thisNode();
  const signature = here ? "here" : `${shard.node} ${owner?.url ?? ""}`;
  if (cell.dataset.signature === signature) return;
  cell.dataset.signature = signature;
  if (!here) {
    cell.replaceChildren(
      owner?.url ? h("a", { href: `${owner.url}/ui` }, `On ${shard.node}'s dashboard`) : `${shard.node} is down`,
    );
    return;
  }
  const n = shard.shard;
  const browse = h("button", { type: "button", "aria-label": `Browse shard ${n}` }, "Browse");
  const check = h("button", { type: "button", "aria-label": `Check shard ${n}` }, "Check");
  const backup = h("button", { type: "button", "aria-label": `Back up shard ${n}` }, "Back up");
  browse.addEventListener("click", () => {
    field(page.keysForm, "shard", HTMLSelectElement).value = String(n);
    void showKeys(n, 0, null);
  });
  check.addEventListener("click", () => void runShardAction(check, n, "check"));
  backup.addEventListener("click", () => void runShardAction(backup, n, "backup"));
  cell.replaceChildren(browse, " ", check, " ", backup);
}

function renderShards() {
  const cluster = view.cluster;
  if (!cluster) return;
  const owners = new Map(cluster.nodes.map((node) => [node.node, node]));
  syncChildren(
    page.shards,
    [...cluster.shards].sort((a, b) => a.shard - b.shard),
    (shard) => String(shard.shard),
    () => h("tr", {}, h("th", { scope: "row" }), ...Array.from({ length: 10 }, () => h("td"))),
    (row, shard) => {
      const cells = /** @type {HTMLTableCellElement[]} */ ([...row.children]);
      const here = shard.node === thisNode();
      // A node keeps a moved shard's copy for a while; its figures are no longer the shard's.
      const figures = here ? view.figures.get(shard.shard) : undefined;
      const unknown = here ? "…" : "";
      const texts = [
        String(shard.shard),
        formatSlots(shard.slots),
        shard.node,
        shard.state,
        figures ? figures.entities.toLocaleString("en-US") : unknown,
        figures ? formatBytes(figures.fileBytes) : unknown,
        figures ? formatBytes(figures.walBytes) : unknown,
        figures ? figures.sequence.toLocaleString("en-US") : unknown,
        figures ? figures.idempotencyRecords.toLocaleString("en-US") : unknown,
        figures ? formatAgo(figures.lastWriteAt) : unknown,
      ];
      texts.forEach((text, index) => {
        const cell = cells[index];
        if (cell) setText(cell, text);
      });
      if (cells[9]) cells[9].title = figures?.lastWriteAt ?? "";
      const actions = cells[10];
      if (actions) renderShardActions(actions, shard, owners.get(shard.node));
    },
  );
}

/** The choices of the move, split and keys forms; the cluster's actions only on a cluster. */
function renderForms() {
  const cluster = view.cluster;
  if (!cluster) return;
  const inCluster = cluster.cluster !== null;
  page.noCluster.hidden = inCluster;
  page.clusterPart.hidden = !inCluster;
  const shardOptions = [...cluster.shards]
    .sort((a, b) => a.shard - b.shard)
    .map((shard) => ({
      value: String(shard.shard),
      label: `${shard.shard} (on ${shard.node}, slots ${formatSlots(shard.slots)})`,
    }));
  syncOptions(field(page.moveForm, "shard", HTMLSelectElement), shardOptions);
  syncOptions(field(page.splitForm, "shard", HTMLSelectElement), shardOptions);
  syncOptions(
    field(page.moveForm, "to", HTMLSelectElement),
    cluster.nodes.filter((node) => node.alive).map((node) => ({ value: node.node, label: node.node })),
  );
  syncOptions(
    field(page.keysForm, "shard", HTMLSelectElement),
    shardOptions.filter((option) =>
      cluster.shards.some((shard) => String(shard.shard) === option.value && shard.node === thisNode()),
    ),
  );
}

function renderMoves() {
  const cluster = view.cluster;
  if (!cluster) return;
  syncChildren(
    page.moves,
    [...cluster.moves].sort((a, b) => b.createdAt.localeCompare(a.createdAt)),
    (move) => move.id,
    () => h("tr", {}, h("th", { scope: "row" }), ...Array.from({ length: 7 }, () => h("td"))),
    (row, move) => {
      const texts = [
        move.id,
        move.kind,
        move.newShard === null ? String(move.shard) : `${move.shard} → ${move.newShard}`,
        move.from,
        move.to,
        move.state,
        move.detail ?? "",
        formatAgo(move.updatedAt),
      ];
      [...row.children].forEach((cell, index) => setText(cell, texts[index] ?? ""));
      const state = row.children[5];
      if (state) state.className = move.state;
    },
  );
}

function render() {
  renderSummary();
  renderNodes();
  renderSlotMap();
  renderShards();
  renderForms();
  renderMoves();
}

/** @returns {Promise<ClusterStatus>} */
function readCluster(token = sessionStorage.getItem(TOKEN_KEYS.admin) ?? "") {
  return call("/admin/cluster", { token });
}

/** This node's shards and their figures. @returns {Promise<ShardInfo[]>} */
async function readShards() {
  /** @type {{ shards: ShardInfo[] }} */
  const answer = await call("/admin/shards");
  return answer.shards;
}

/** Reads the cluster and this node's shard figures, shows them, and comes back in REFRESH_MS. */
async function refresh() {
  clearTimeout(view.timer);
  const [cluster, shards] = await Promise.allSettled([readCluster(), readShards()]);
  if (!view.loggedIn) return;
  const failures = [cluster, shards].flatMap((answer) => (answer.status === "rejected" ? [answer.reason] : []));
  if (failures.some((error) => error instanceof ApiError && error.status === 401)) {
    showLogin("The server no longer accepts the admin token: log in again.");
    return;
  }
  if (cluster.status === "fulfilled") view.cluster = cluster.value;
  if (shards.status === "fulfilled") view.figures = new Map(shards.value.map((shard) => [shard.shard, shard]));
  render();
  setText(page.refreshError, failures.length ? `Cannot refresh: ${failures.map(messageOf).join("; ")}. Retrying.` : "");
  if (!failures.length) setText(page.freshness, `Updated ${new Date().toLocaleTimeString()}`);
  // Refreshes started by actions may overlap the timed one: whichever ends last sets the one timer.
  clearTimeout(view.timer);
  if (!document.hidden) view.timer = setTimeout(() => void refresh(), REFRESH_MS);
}

// --- actions -----------------------------------------------------------------------------------

/**
 * @param {HTMLElement} button
 * @param {number} shard
 * @param {"check" | "backup"} action
 */
async function runShardAction(button, shard, action) {
  const name = action === "check" ? "Check" : "Backup";
  const report = activity(`${name} of shard ${shard}: running…`);
  button.setAttribute("disabled", "");
  try {
    if (action === "check") {
      /** @type {CheckResult} */
      const result = await call(`/admin/shards/${shard}/check`, { method: "POST" });
      report(
        `Check of shard ${shard}: ${result.ok ? "ok" : `${result.messages.length} problems: ${result.messages.join("; ")}`}`,
      );
    } else {
      /** @type {BackupResult} */
      const result = await call(`/admin/shards/${shard}/backup`, { method: "POST" });
      report(`Backup of shard ${shard}: backups/${result.file}, ${formatBytes(result.bytes)}, at sequence ${result.sequence}`);
    }
  } catch (error) {
    report(`${name} of shard ${shard} failed: ${messageOf(error)}`);
  } finally {
    button.removeAttribute("disabled");
  }
}

/** @param {Move} move */
function describeMove(move) {
  return move.kind === "split"
    ? `Split of shard ${move.shard} into ${move.shard} and ${move.newShard} on ${move.from} (${move.id})`
    : `Move of shard ${move.shard} from ${move.from} to ${move.to} (${move.id})`;
}

/** Follows a move or split until it is done or aborted, in the activity log. @param {Move} started */
async function watchMove(started) {
  const states = [started.state];
  const report = activity(`${describeMove(started)}: ${started.state}`);
  let move = started;
  while (view.loggedIn && !FINISHED.has(move.state)) {
    await new Promise((resolve) => setTimeout(resolve, MOVE_POLL_MS));
    try {
      move = await call(`/admin/cluster/moves/${encodeURIComponent(move.id)}`);
    } catch (error) {
      report(`${describeMove(move)}: ${states.join(" → ")} (cannot read its state now: ${messageOf(error)})`);
      continue;
    }
    if (states.at(-1) !== move.state) states.push(move.state);
    report(`${describeMove(move)}: ${states.join(" → ")}${move.state === "aborted" && move.detail ? `: ${move.detail}` : ""}`);
  }
  if (view.loggedIn) void refresh();
}

/** @param {string} what @param {() => Promise<Move[]>} start */
async function startMoves(what, start) {
  try {
    const moves = await start();
    if (moves.length === 0) activity(`${what}: nothing to do, the cluster is balanced`);
    for (const move of moves) void watchMove(move);
    void refresh();
  } catch (error) {
    activity(`${what} refused: ${messageOf(error)}`);
  }
}

/**
 * Shows one page of a shard's keys: page `index` (from 0), which starts after `cursor`.
 * @param {number} shard
 * @param {number} index
 * @param {string | null} cursor
 */
async function showKeys(shard, index, cursor) {
  const query = new URLSearchParams({ limit: String(KEY_PAGE_SIZE), ...(cursor !== null && { cursor }) });
  try {
    /** @type {KeyPage} */
    const answer = await call(`/admin/shards/${shard}/entities?${query}`);
    view.keys = { shard, index, cursors: [...view.keys.cursors.slice(0, index), cursor], next: answer.nextCursor };
    const first = index * KEY_PAGE_SIZE + 1;
    setText(
      page.keysCaption,
      answer.items.length
        ? `Shard ${shard}, page ${index + 1}: keys ${first}–${first + answer.items.length - 1}${answer.nextCursor ? "" : " (the last page)"}`
        : `Shard ${shard} holds no keys.`,
    );
    page.keys.replaceChildren(...answer.items.map(keyRow));
  } catch (error) {
    view.keys = { shard, index: 0, cursors: [null], next: null };
    setText(page.keysCaption, `Cannot list the keys of shard ${shard}: ${messageOf(error)}`);
    page.keys.replaceChildren();
  }
  page.keysFirst.disabled = view.keys.index === 0;
  page.keysPrevious.disabled = view.keys.index === 0;
  page.keysNext.disabled = view.keys.next === null;
}

/** @param {ShardKey} key */
function keyRow(key) {
  const open = h("button", { type: "button", "aria-label": `Open ${key.type}/${key.id}` }, "Open");
  open.addEventListener("click", () => {
    field(page.entityForm, "type", HTMLInputElement).value = key.type;
    field(page.entityForm, "id", HTMLInputElement).value = key.id;
    void openEntity(key.type, key.id);
  });
  return h(
    "tr",
    {},
    h("td", {}, key.type),
    h("td", {}, key.id),
    h("td", {}, String(key.slot)),
    h("td", {}, String(key.version)),
    h("td", {}, open),
  );
}

/** @param {string} type @param {string} id */
function entityPath(type, id) {
  return `${encodeURIComponent(type)}/${encodeURIComponent(id)}`;
}

/** @param {string} type @param {string} id */
async function openEntity(type, id) {
  setText(page.entityError, "");
  page.location.hidden = true;
  page.entity.hidden = true;
  try {
    /** @type {Entity} */
    const entity = await call(`/v1/entities/${entityPath(type, id)}`, { plane: "data" });
    setText(page.entityKey, `${entity.type}/${entity.id}`);
    setText(page.entityVersion, String(entity.version));
    setText(page.entityCreated, entity.createdAt);
    setText(page.entityUpdated, entity.updatedAt);
    setText(page.entityData, JSON.stringify(entity.data, null, 2));
    page.entity.hidden = false;
  } catch (error) {
    const refused = error instanceof ApiError && error.status === 401;
    const hint = sessionStorage.getItem(TOKEN_KEYS.data)
      ? "the server refused the data token"
      : "reading entities needs the data token: log out, then log in with it";
    setText(page.entityError, `Cannot open ${type}/${id}: ${refused ? hint : messageOf(error)}`);
  }
}

/** @param {string} type @param {string} id */
async function locateKey(type, id) {
  setText(page.entityError, "");
  page.entity.hidden = true;
  page.location.hidden = true;
  try {
    /** @type {KeyLocation} */
    const found = await call(`/admin/locate/${entityPath(type, id)}`);
    const owner = view.cluster?.shards.find((shard) => shard.shard === found.shard)?.node;
    setText(
      page.location,
      `${found.type}/${found.id}: slot ${found.slot}, shard ${found.shard}${owner ? ` on ${owner}` : ""}; ${found.exists ? "the entity exists" : "no entity there now"}.`,
    );
    page.location.hidden = false;
  } catch (error) {
    setText(page.entityError, `Cannot locate ${type}/${id}: ${messageOf(error)}`);
  }
}

// --- logging in and out ------------------------------------------------------------------------

/** @param {string} error */
function showLogin(error) {
  view.loggedIn = false;
  clearTimeout(view.timer);
  page.dashboard.hidden = true;
  page.logout.hidden = true;
  page.login.hidden = false;
  setText(page.summary, "");
  setText(page.freshness, "");
  setText(page.loginError, error);
  field(page.loginForm, "admin", HTMLInputElement).focus();
}

function showDashboard() {
  view.loggedIn = true;
  page.login.hidden = true;
  page.dashboard.hidden = false;
  // Without a token (a loopback server that needs none) there is nothing to forget.
  page.logout.hidden = !sessionStorage.getItem(TOKEN_KEYS.admin);
  setText(page.loginError, "");
  void refresh();
}

/** Forgets the tokens and everything read with them. */
function logOut() {
  for (const key of Object.values(TOKEN_KEYS)) sessionStorage.removeItem(key);
  view.cluster = undefined;
  view.figures = new Map();
  for (const container of [page.nodes, page.slotMap, page.owners, page.shards, page.moves, page.keys, page.activity]) {
    container.replaceChildren();
  }
  setText(page.keysCaption, "");
  page.entity.hidden = true;
  page.location.hidden = true;
  setText(page.entityData, "");
  showLogin("");
}

/**
 * Tries a token: the login form's message when it is not accepted, "" when it is.
 * @param {Plane} plane
 * @param {() => Promise<unknown>} attempt
 */
async function refusalOf(plane, attempt) {
  try {
    await attempt();
    return "";
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return `The server refused this ${plane} token (401 unauthorized).`;
    return `Cannot log in: ${messageOf(error)}`;
  }
}

/** @param {SubmitEvent} event */
async function logIn(event) {
  event.preventDefault();
  const admin = field(page.loginForm, "admin", HTMLInputElement).value;
  const data = field(page.loginForm, "data", HTMLInputElement).value;
  setText(page.loginError, "");
  const refusal =
    (await refusalOf("admin", () => readCluster(admin))) ||
    (data && (await refusalOf("data", () => call("/v1/topology", { plane: "data", token: data }))));
  if (refusal) {
    setText(page.loginError, refusal);
    return;
  }
  sessionStorage.setItem(TOKEN_KEYS.admin, admin);
  if (data) sessionStorage.setItem(TOKEN_KEYS.data, data);
  else sessionStorage.removeItem(TOKEN_KEYS.data);
  page.loginForm.reset();
  showDashboard();
}

/** Straight to the dashboard when the stored token (or none, on a loopback server without tokens) is accepted. */
async function start() {
  const stored = sessionStorage.getItem(TOKEN_KEYS.admin);
  try {
    await readCluster();
    showDashboard();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showLogin(`Cannot reach the server: ${messageOf(error)}`);
    else showLogin(stored ? "The server refused the stored admin token: log in again." : "");
  }
}

page.loginForm.addEventListener("submit", (event) => void logIn(event));
page.logout.addEventListener("click", logOut);
page.moveForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const shard = Number(field(page.moveForm, "shard", HTMLSelectElement).value);
  const to = field(page.moveForm, "to", HTMLSelectElement).value;
  void startMoves(`Move of shard ${shard} to ${to}`, async () => [
    await call("/admin/cluster/moves", { method: "POST", body: { shard, to } }),
  ]);
});
page.splitForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const shard = Number(field(page.splitForm, "shard", HTMLSelectElement).value);
  void startMoves(`Split of shard ${shard}`, async () => [
    await call("/admin/cluster/splits", { method: "POST", body: { shard } }),
  ]);
});
page.rebalance.addEventListener("click", () => {
  void startMoves("Rebalance", async () => {
    /** @type {{ moves: Move[] }} */
    const answer = await call("/admin/cluster/rebalance", { method: "POST" });
    return answer.moves;
  });
});
page.keysForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void showKeys(Number(field(page.keysForm, "shard", HTMLSelectElement).value), 0, null);
});
page.keysFirst.addEventListener("click", () => void showKeys(view.keys.shard, 0, null));
page.keysPrevious.addEventListener("click", () => {
  const { shard, index, cursors } = view.keys;
  void showKeys(shard, index - 1, cursors[index - 1] ?? null);
});
page.keysNext.addEventListener("click", () => void showKeys(view.keys.shard, view.keys.index + 1, view.keys.next));
page.entityForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const type = field(page.entityForm, "type", HTMLInputElement).value.trim();
  const id = field(page.entityForm, "id", HTMLInputElement).value.trim();
  if (event.submitter instanceof HTMLButtonElement && event.submitter.name === "locate") void locateKey(type, id);
  else void openEntity(type, id);
});
document.addEventListener("visibilitychange", () => {
  if (view.loggedIn && !document.hidden) void refresh();
});

void start();
