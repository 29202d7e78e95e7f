/**
 * PROTOCOL.md's reducer, pure: the browser twin of `Replica` in
 * src/gapless/stream.py. No DOM, no network; tests/reducer_cases.json is run
 * against both implementations so they cannot drift.
 *
 * A Message is the PROTOCOL Message object; only `id`, `parent_id`, `seq`,
 * `status`, `content`, `thinking` and `parts` matter to these rules.
 */

export const FINAL_STATUSES = new Set(["complete", "failed", "cancelled"]);
const MESSAGE_EVENTS = new Set([
  "message.created",
  "message.updated",
  "message.completed",
  "message.failed",
  "message.cancelled",
]);

/** @param {{status?: string}} message */
export const isFinal = (message) => FINAL_STATUSES.has(message.status);

/**
 * Whether a whole Message replaces the local copy: unless the local copy is
 * newer (higher seq, or final while the incoming one is not).
 */
export function supersedes(incoming, local) {
  if ((local.seq ?? 0) > (incoming.seq ?? 0)) return false;
  return !(isFinal(local) && !isFinal(incoming));
}

/** "apply" | "skip" | "gap" for a delta numbered `deltaSeq` on a copy at `localSeq`. */
export function judge(localSeq, deltaSeq) {
  if (deltaSeq === localSeq + 1) return "apply";
  if (deltaSeq <= localSeq) return "skip";
  return "gap";
}

/** Normalise a `message.delta` payload (missing or null text is ""). */
function toDelta(data) {
  const tool = data.tool && typeof data.tool === "object" && "id" in data.tool ? { ...data.tool } : null;
  return {
    message_id: String(data.message_id),
    seq: Number(data.seq),
    content: data.content ? String(data.content) : "",
    thinking: data.thinking ? String(data.thinking) : "",
    tool,
  };
}

/** The parts of a Message that has none (v1): its thinking, then its text. */
export function partsOf(content, thinking) {
  const parts = [];
  if (thinking) parts.push({ id: "p0", type: "thinking", text: thinking });
  if (content) parts.push({ id: `p${parts.length}`, type: "text", text: content });
  return parts;
}

/**
 * The parts after one delta (PROTOCOL.md "Parts"): thinking, then content,
 * then tool. Returns a new array; the parts it changes are new objects, the
 * others are shared (a view may compare them by identity).
 */
export function addToParts(parts, delta) {
  const next = parts.slice();
  const text = (type, piece) => {
    const last = next[next.length - 1];
    if (last !== undefined && last.type === type) next[next.length - 1] = { ...last, text: last.text + piece };
    else next.push({ id: `p${next.length}`, type, text: piece });
  };
  if (delta.thinking) text("thinking", delta.thinking);
  if (delta.content) text("text", delta.content);
  const change = delta.tool;
  if (change) {
    const id = String(change.id);
    let index = next.findIndex((part) => part.type === "tool" && part.id === id);
    if (index < 0) {
      next.push({ id, type: "tool", name: String(change.name ?? ""), arguments: "", status: "input", output: null, error: null });
      index = next.length - 1;
    }
    const part = { ...next[index] };
    if (change.arguments) part.arguments += String(change.arguments);
    for (const key of ["status", "output", "error"]) if (key in change) part[key] = change[key];
    next[index] = part;
  }
  return next;
}

/**
 * A client's copy of one chat's messages.
 *
 * `receive` returns false when the client must refetch the state and
 * resubscribe from its cursor (a gap, or `reset`); the replica then ignores
 * every event until `load` is called again. `changed` collects the ids of
 * messages that were added, updated or removed, for the view to redraw only
 * those (drain it with `takeChanges`).
 */
export class Replica {
  constructor() {
    /** @type {Map<string, object>} */
    this.messages = new Map();
    /** @type {Map<string, object[]>} deltas of messages not known yet */
    this.held = new Map();
    /** @type {string|null} */
    this.cursor = null;
    this.stale = false;
    this.deleted = false;
    /** @type {Set<string>} */
    this.changed = new Set();
  }

  /** Adopt a fetched state, keeping local copies that are newer. */
  load(messages, cursor) {
    const fresh = new Map();
    for (const message of messages) {
      const local = this.messages.get(message.id);
      const kept = local === undefined || supersedes(message, local) ? message : local;
      fresh.set(message.id, kept);
      if (kept !== local) this.changed.add(message.id);
    }
    for (const id of this.messages.keys()) if (!fresh.has(id)) this.changed.add(id);
    this.messages = fresh;
    this.cursor = cursor;
    this.stale = false;
    const held = this.held;
    this.held = new Map();
    for (const deltas of held.values()) for (const delta of deltas) this.#delta(delta);
  }

  /**
   * Apply one event. `cursor` is the event's cursor (null for `reset`).
   * @returns {boolean} false when the state must be refetched
   */
  receive(type, data, cursor) {
    if (this.stale) return false;
    if (type === "reset") {
      this.stale = true;
      return false;
    }
    let ok = true;
    if (type === "message.delta") ok = this.#delta(toDelta(data));
    else if (MESSAGE_EVENTS.has(type)) ok = this.#message({ ...data });
    else if (type === "message.deleted") this.#drop(String(data.id));
    else if (type === "chat.deleted") this.deleted = true;
    // any other type is ignored (PROTOCOL.md: clients ignore what they do not know)
    if (!ok) {
      this.stale = true;
      return false;
    }
    if (cursor !== null && cursor !== undefined) this.cursor = cursor;
    return true;
  }

  /** The ids changed since the last call. */
  takeChanges() {
    const changed = this.changed;
    this.changed = new Set();
    return changed;
  }

  #delta(delta) {
    const local = this.messages.get(delta.message_id);
    if (local === undefined) {
      const list = this.held.get(delta.message_id) ?? [];
      list.push(delta);
      this.held.set(delta.message_id, list);
      return true;
    }
    const verdict = judge(local.seq ?? 0, delta.seq);
    if (verdict === "apply") {
      const content = local.content ?? "";
      const thinking = local.thinking ?? "";
      this.messages.set(delta.message_id, {
        ...local,
        content: content + delta.content,
        thinking: thinking + delta.thinking,
        parts: addToParts(local.parts ?? partsOf(content, thinking), delta),
        seq: delta.seq,
        status: local.status === "pending" || local.status === "requires_action" ? "streaming" : local.status,
      });
      this.changed.add(delta.message_id);
    }
    return verdict !== "gap";
  }

  #message(message) {
    const local = this.messages.get(message.id);
    if (local === undefined || supersedes(message, local)) {
      this.messages.set(message.id, message);
      this.changed.add(message.id);
    }
    const held = this.held.get(message.id) ?? [];
    this.held.delete(message.id);
    for (const delta of held) if (!this.#delta(delta)) return false;
    return true;
  }

  #drop(id) {
    const doomed = new Set([id]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const message of this.messages.values()) {
        if (doomed.has(message.parent_id) && !doomed.has(message.id)) {
          doomed.add(message.id);
          grew = true;
        }
      }
    }
    for (const gone of doomed) {
      if (this.messages.delete(gone)) this.changed.add(gone);
      this.held.delete(gone);
    }
  }
}
