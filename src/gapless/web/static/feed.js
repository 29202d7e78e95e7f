/**
 * Live subscriptions over Server-Sent Events, with a visible connection state.
 *
 * `ChatFeed` keeps a `Replica` of one chat: it loads the state and its cursor
 * together, subscribes from that cursor, and on `reset` or a gap closes the
 * EventSource, refetches and subscribes anew from the fresh cursor. A
 * dropped connection is resumed by EventSource itself (it sends
 * `Last-Event-ID`); when the browser goes offline the feed closes it, and
 * back online resubscribes from the last applied cursor; when the browser
 * gives up (the connection is closed for good), the feed resyncs with a
 * backoff. `AccountFeed` follows the account stream for the chat list, and
 * hands its other events to the pages that `listen` (one connection per tab).
 */
import { ApiError, api } from "./api.js";
import { Replica } from "./reducer.js";

/** @typedef {"connecting"|"live"|"reconnecting"|"offline"} Connection */

const CHAT_EVENTS = [
  "message.created", "message.updated", "message.delta", "message.completed", "message.failed",
  "message.cancelled", "message.deleted", "chat.updated", "chat.deleted", "reset",
];
const ACCOUNT_EVENTS = ["chat.created", "chat.updated", "chat.deleted", "reset"];

/** Delay before the n-th consecutive retry: 0.5 s doubling to 10 s. */
const backoff = (attempt) => Math.min(10_000, 500 * 2 ** attempt);

/** Shared plumbing: one EventSource at a time, its state, and retries. */
class Subscription {
  /** @param {(c: Connection) => void} onConnection */
  constructor(onConnection) {
    this.onConnection = onConnection;
    /** @type {EventSource|null} */
    this.source = null;
    this.closed = false;
    this.attempt = 0;
    this.timer = 0;
    this.connection = /** @type {Connection} */ ("connecting");
    this.onOnline = () => this.online();
    this.onOffline = () => this.offline();
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
  }

  setConnection(connection) {
    if (connection === this.connection) return;
    this.connection = connection;
    this.onConnection(connection);
  }

  /** Open `url`, dispatching `types` to `handle(type, data, cursor)`. */
  open(url, types, handle) {
    this.source?.close();
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.attempt = 0;
      this.setConnection("live");
      this.opened();
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        this.source = null;
        this.retry();
      } else {
        this.setConnection(navigator.onLine ? "reconnecting" : "offline");
      }
    };
    this.handle = handle;
    for (const type of types) this.watch(source, type);
  }

  /** Hand `source`'s events of `type` to the handler `open` was given, while it is current. */
  watch(source, type) {
    source.addEventListener(type, (event) => {
      if (source !== this.source) return;
      // `reset` carries no id: EventSource would report the previous one.
      const cursor = type === "reset" ? null : event.lastEventId || null;
      this.handle(type, JSON.parse(event.data), cursor);
    });
  }

  /** Called when a connection opens (first time and after every reconnect). */
  opened() {}

  /** Start over (refetch and subscribe), after a backoff. */
  retry() {
    this.source?.close();
    this.source = null;
    if (this.closed) return;
    this.setConnection(navigator.onLine ? "reconnecting" : "offline");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.restart(), backoff(this.attempt));
    this.attempt += 1;
  }

  /**
   * The browser lost the network: close the connection rather than trust it
   * (a dead TCP connection can look open for minutes); `online` resumes.
   */
  offline() {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    this.setConnection("offline");
  }

  online() {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.setConnection("reconnecting");
    this.resume();
  }

  /** Subclasses refetch and call `open` again. */
  restart() {}

  /** Subscribe again after a drop; by default, start over. */
  resume() {
    this.restart();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
  }
}

/**
 * One chat, kept live. Callbacks:
 * - `onChat(chat)` when the chat's own record is loaded or updated;
 * - `onMessages(changedIds, replica)` after messages changed;
 * - `onGone()` when the chat was deleted or is no longer visible;
 * - `onConnection(state)`.
 */
export class ChatFeed extends Subscription {
  constructor(chatId, { onChat, onMessages, onGone, onConnection }) {
    super(onConnection);
    this.chatId = chatId;
    this.replica = new Replica();
    this.callbacks = { onChat, onMessages, onGone };
  }

  /** Load the state and subscribe; resolves once the first state is shown. */
  async start() {
    await this.restart();
  }

  async restart() {
    if (this.closed) return;
    let state;
    try {
      state = await api.get(`/api/chats/${encodeURIComponent(this.chatId)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return this.gone();
      return this.retry();
    }
    if (this.closed) return;
    this.replica.load(state.messages, state.cursor);
    this.callbacks.onChat(state.chat);
    this.flush();
    this.subscribe(state.cursor);
  }

  /** Resubscribe from the last event applied: nothing is refetched, nothing missed. */
  resume() {
    if (this.replica.cursor === null || this.replica.stale) return this.restart();
    this.subscribe(this.replica.cursor);
  }

  subscribe(cursor) {
    const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
    this.open(`/api/chats/${encodeURIComponent(this.chatId)}/events${query}`, CHAT_EVENTS, (type, data, at) =>
      this.receive(type, data, at),
    );
  }

  receive(type, data, cursor) {
    const ok = this.replica.receive(type, data, cursor);
    if (type === "chat.updated") this.callbacks.onChat(data);
    this.flush();
    if (this.replica.deleted) return this.gone();
    if (!ok) {
      // a gap or `reset`: refetch at once, subscribe from the fresh cursor
      this.source?.close();
      this.source = null;
      this.setConnection("reconnecting");
      this.restart();
    }
  }

  /** Put a message we got from an HTTP answer into the replica (a whole Message). */
  adopt(message) {
    this.replica.receive("message.created", message, null);
    this.flush();
  }

  flush() {
    const changed = this.replica.takeChanges();
    if (changed.size > 0) this.callbacks.onMessages(changed, this.replica);
  }

  gone() {
    this.close();
    this.callbacks.onGone();
  }
}

/**
 * The account's chats, newest first, kept live. The list endpoint has no
 * cursor, so the feed subscribes first and lists once the stream is open
 * (and again after every reconnect); events and listings merge by
 * `updated_at`, and deleted ids are remembered so a stale listing cannot
 * bring a chat back.
 */
export class AccountFeed extends Subscription {
  constructor({ onChats, onConnection }) {
    super(onConnection);
    this.onChats = onChats;
    /** @type {Map<string, object>} */
    this.chats = new Map();
    this.deleted = new Set();
    /** @type {Map<string, Set<{handler: (data: object) => void, reopened: (() => void)|null}>>} */
    this.listeners = new Map();
    this.wasOpen = false;
  }

  start() {
    this.restart();
  }

  restart() {
    if (this.closed) return;
    const extra = [...this.listeners.keys()].filter((type) => !ACCOUNT_EVENTS.includes(type));
    this.open("/api/events", [...ACCOUNT_EVENTS, ...extra], (type, data) => this.receive(type, data));
  }

  /**
   * Also hand the account stream's `type` events to `handler(data)` (a trace's, an
   * experiment's or a dataset's page): one connection per tab however many pages follow
   * it, where a page of its own would hold one more of the six a browser allows a site.
   * `reopened` runs after each reconnect (events may have been missed: refetch).
   * Returns the function that stops it.
   */
  listen(type, handler, reopened = null) {
    let entries = this.listeners.get(type);
    if (entries === undefined) {
      entries = new Set();
      this.listeners.set(type, entries);
      if (this.source && !ACCOUNT_EVENTS.includes(type)) this.watch(this.source, type);
    }
    const entry = { handler, reopened };
    entries.add(entry);
    return () => entries.delete(entry);
  }

  async opened() {
    if (this.wasOpen) {
      for (const entries of this.listeners.values()) for (const entry of entries) entry.reopened?.();
    }
    this.wasOpen = true;
    try {
      const chats = [];
      let next = null;
      do {  // the list comes in pages, newest first
        const page = await api.get(`/api/chats?limit=200${next ? `&cursor=${encodeURIComponent(next)}` : ""}`);
        chats.push(...page.chats);
        next = page.next;
      } while (next);
      for (const chat of chats) this.upsert(chat);
      const listed = new Set(chats.map((chat) => chat.id));
      for (const id of this.chats.keys()) if (!listed.has(id)) this.chats.delete(id);
      this.emit();
    } catch {
      this.retry();
    }
  }

  receive(type, data) {
    for (const entry of this.listeners.get(type) ?? []) entry.handler(data);
    if (!ACCOUNT_EVENTS.includes(type)) return;
    if (type === "reset") return this.retry();
    if (type === "chat.deleted") {
      this.deleted.add(data.id);
      this.chats.delete(data.id);
    } else {
      this.upsert(data);
    }
    this.emit();
  }

  /** Record a chat this tab created or changed (its event will follow). */
  upsert(chat) {
    if (this.deleted.has(chat.id)) return;
    const known = this.chats.get(chat.id);
    if (known === undefined || known.updated_at <= chat.updated_at) this.chats.set(chat.id, chat);
  }

  remove(id) {
    this.deleted.add(id);
    this.chats.delete(id);
    this.emit();
  }

  emit() {
    const sorted = [...this.chats.values()].sort((a, b) =>
      a.updated_at === b.updated_at ? (a.id < b.id ? 1 : -1) : a.updated_at < b.updated_at ? 1 : -1,
    );
    this.onChats(sorted);
  }
}
