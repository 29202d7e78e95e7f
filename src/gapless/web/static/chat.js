/**
 * The chat page: history, composer, and the controls on each message.
 *
 * State lives in the `ChatFeed`'s replica (what the server says) and in the
 * outbox (what the user typed that is not accepted yet). Changes are drawn
 * once per animation frame, and only the nodes of changed messages redraw.
 */
import { ApiError, api } from "./api.js";
import { Composer } from "./composer.js";
import { ChatFeed } from "./feed.js";
import { MessageNode, UNFINISHED } from "./message.js";
import { Follower } from "./scroll.js";
import { parentKey, shownPath } from "./tree.js";
import { keepUnsent, unsent } from "./unsent.js";

/** Unfinished replies (Stop applies, a new message waits): writing, or waiting for an approval. */
const isStreaming = (message) => UNFINISHED.has(message.status);

/** A short title from the first message of a chat. */
function titleFrom(text) {
  const line = text.trim().split("\n")[0].replace(/[*_`#>~]+/g, "").replace(/\s+/g, " ").trim() || "New chat";
  return line.length > 60 ? `${line.slice(0, 57).trimEnd()}…` : line;
}

export class ChatView {
  /**
   * @param {object} shell  what the page around the chat offers:
   *   `models` ({models, default}), `agents` ({agents: Agent[]}), `account` (AccountFeed), `navigate(path, {replace})`,
   *   `setTitle(text)`, `setConnection(state|null)`, `toast(text)`
   */
  constructor(shell) {
    this.shell = shell;
    const $ = (id) => document.getElementById(id);
    this.root = $("chat-view");
    this.list = $("messages");
    this.follower = new Follower($("scroller"), $("jump"));
    this.empty = $("empty-state");
    this.composer = new Composer({
      onSend: (text) => this.submit(text),
      onStop: () => this.stop(),
      onModel: (model) => this.chatId && this.patchChat({ model }),
      onAgent: (agentId) => this.chooseAgent(agentId),
    });

    this.chatId = null;
    this.chat = null;
    this.focus = null;
    /** @type {ChatFeed|null} */
    this.feed = null;
    /** @type {Map<string, MessageNode>} */
    this.nodes = new Map();
    /** Messages typed here that the server has not accepted yet. */
    this.outbox = [];
    /** @type {Map<string, MessageNode>} */
    this.outboxNodes = new Map();
    /** parent key -> the child id the user picked with the switcher */
    this.chosen = new Map();
    this.dirty = new Set();
    this.frame = 0;
    this.path = [];
    /** settings of a chat not created yet */
    this.draft = { title: "", system_prompt: "", agent_id: null };
    this.bind();
  }

  bind() {
    this.list.addEventListener("click", (event) => this.action(event));
    this.list.addEventListener("submit", (event) => this.editSubmitted(event));
    this.list.addEventListener("keydown", (event) => {
      if (event.target.matches(".edit-text") && event.key === "Escape") this.nodeOf(event.target)?.stopEdit();
      if (event.target.matches(".edit-text") && event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        event.target.form.requestSubmit();
      }
    });
  }

  /** Show chat `chatId`, or a new empty chat when null. */
  async show(chatId) {
    this.root.hidden = false;
    const focus = new URLSearchParams(location.search).get("message");
    if (chatId !== null && chatId === this.chatId) return this.reveal(focus);
    this.reset();
    this.outbox = unsent(chatId);
    this.fillModels(null);
    this.fillAgents(null);
    this.shell.setTitle("New chat");
    this.render();
    if (chatId === null) {
      this.composer.focus();
      return;
    }
    await this.attach(chatId);
    this.composer.focus();
    this.reveal(focus);
  }

  /** Bring the message `id` into view and mark it (a trace's "Open chat" names its reply);
   * the view stops following the newest text so it stays there. */
  reveal(id) {
    this.focus = id; // drawn later if its state is not on the page yet
    const node = id ? this.nodes.get(id) : null;
    if (!node) return;
    this.focus = null;
    this.follower.following = false;
    node.el.classList.add("focused");
    node.el.scrollIntoView({ block: "center" });
  }

  hide() {
    this.root.hidden = true;
  }

  /** Forget the shown chat (its feed, nodes, outbox and choices). */
  reset() {
    this.feed?.close();
    this.feed = null;
    this.chatId = null;
    this.chat = null;
    this.nodes.clear();
    this.outbox = [];
    this.outboxNodes.clear();
    this.chosen.clear();
    this.list.replaceChildren();
    this.follower.resume();
    this.draft = { title: "", system_prompt: "", agent_id: null };
    this.shell.setConnection(null);
  }

  /** Subscribe to `chatId`; resolves when its state is on the page. */
  async attach(chatId) {
    this.chatId = chatId;
    const feed = new ChatFeed(chatId, {
      onChat: (chat) => this.chatLoaded(chat),
      onMessages: (changed) => this.changed(changed),
      onGone: () => {
        if (this.feed !== feed) return;
        this.shell.toast("This chat was deleted.");
        this.shell.navigate("/", { replace: true });
      },
      onConnection: (state) => {
        if (this.feed === feed) this.shell.setConnection(state);
      },
    });
    this.feed = feed;
    this.shell.setConnection("connecting");
    await feed.start();
  }

  chatLoaded(chat) {
    this.chat = chat;
    this.shell.setTitle(chat.title || "New chat");
    this.fillModels(chat.model);
    this.fillAgents(chat.agent_id ?? null);
    this.shell.account.upsert(chat);
    this.shell.account.emit();
  }

  fillModels(selected) {
    this.composer.setModels(this.shell.models.models, selected, this.shell.models.default);
  }

  fillAgents(selected) {
    this.composer.setAgents(this.shell.agents.agents, selected);
  }

  /**
   * The agent picker changed: the chat runs that agent from its next reply
   * (null: none). The agent brings its model: the model picker shows it and
   * the chat keeps it, so what the picker shows is what runs (a message's
   * model wins over its agent's, and the page always sends the one shown).
   */
  chooseAgent(agentId) {
    const agent = this.shell.agents.agents.find((a) => a.id === agentId);
    const model = agent?.model && this.shell.models.models.some((m) => m.id === agent.model) ? agent.model : null;
    if (model) this.fillModels(model);
    if (this.chatId) return this.patchChat(model ? { agent_id: agentId, model } : { agent_id: agentId });
    this.draft = { ...this.draft, agent_id: agentId };
  }

  changed(ids) {
    for (const id of ids) this.dirty.add(id);
    this.schedule();
  }

  /** Coalesce redraws to one per frame (many deltas can arrive in one frame). */
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const replica = this.feed?.replica;
    const messages = replica ? replica.messages : new Map();
    this.path = shownPath(messages.values(), this.chosen);
    const wanted = [];
    for (const { message, siblings, index } of this.path) {
      let node = this.nodes.get(message.id);
      if (node === undefined) {
        node = new MessageNode(message.role === "user" ? "user" : "assistant");
        this.nodes.set(message.id, node);
        this.dirty.add(message.id);
      }
      if (this.dirty.delete(message.id) && node.update(message)) this.announce(node, message);
      node.setSiblings(index, siblings.length);
      wanted.push(node.el);
    }
    // nodes off the path are rebuilt when shown again
    for (const id of this.dirty) this.nodes.delete(id);
    this.dirty.clear();
    for (const id of this.nodes.keys()) if (!messages.has(id)) this.nodes.delete(id);
    for (const entry of this.outbox) {
      let node = this.outboxNodes.get(entry.localId);
      if (node === undefined) {
        node = new MessageNode("user");
        this.outboxNodes.set(entry.localId, node);
      }
      node.setOutbox(entry);
      wanted.push(node.el);
    }
    this.arrange(wanted);
    this.empty.hidden = wanted.length > 0;
    this.composer.setState({
      streaming: this.streamingReplies().length > 0,
      sending: this.outbox.some((entry) => entry.state === "sending"),
    });
    this.follower.settle();
    if (this.focus) this.reveal(this.focus);
  }

  /** Tell screen readers a reply ended (its text, or why it stopped). */
  announce(node, message) {
    const text = message.status === "failed" ? `Reply failed: ${message.error?.message ?? ""}` : node.content.textContent;
    document.getElementById("announcer").textContent = message.status === "cancelled" ? `Stopped. ${text}` : text;
  }

  /** Put `wanted` in the list in order, moving as few nodes as possible. */
  arrange(wanted) {
    wanted.forEach((el, i) => {
      if (this.list.children[i] !== el) this.list.insertBefore(el, this.list.children[i] ?? null);
    });
    while (this.list.children.length > wanted.length) this.list.lastElementChild.remove();
  }

  /** Replies of the shown path still being written. */
  streamingReplies() {
    return this.path.map((step) => step.message).filter((m) => m.role === "assistant" && isStreaming(m));
  }

  /** Send `text` after the shown path's last message; it shows at once, in the outbox. */
  submit(text) {
    const leaf = this.path.at(-1)?.message;
    const entry = {
      localId: `local-${crypto.randomUUID()}`,
      content: text,
      parentId: leaf ? leaf.id : null,
      state: "sending",
      error: "",
    };
    this.outbox.push(entry);
    this.follower.resume();
    this.render();
    this.deliver(entry);
  }

  /**
   * Post an outbox entry; on failure it stays, marked with the reason, for a
   * retry (also after a reload: see unsent.js).
   */
  async deliver(entry) {
    const outbox = this.outbox; // this chat's, even if the reader moves on meanwhile
    const before = this.chatId;
    entry.state = "sending";
    this.render();
    try {
      if (this.chatId === null) await this.createChat(entry.content);
      const body = { content: entry.content, parent_id: entry.parentId, model: this.composer.model };
      const answer = await api.post(`/api/chats/${encodeURIComponent(this.chatId)}/messages`, body);
      outbox.splice(outbox.indexOf(entry), 1);
      if (outbox === this.outbox) {
        this.outboxNodes.get(entry.localId)?.el.remove();
        this.outboxNodes.delete(entry.localId);
        this.follow(answer.user_message);
        this.follow(answer.assistant_message);
      }
    } catch (error) {
      entry.state = "failed";
      entry.error = error instanceof ApiError ? error.message : String(error);
    }
    if (before === null && this.chatId !== null) keepUnsent(null, []);
    keepUnsent(outbox === this.outbox ? this.chatId : before, outbox);
    this.render();
  }

  async createChat(firstMessage) {
    const chat = await api.post("/api/chats", {
      title: this.draft.title || titleFrom(firstMessage),
      model: this.composer.model,
      system_prompt: this.draft.system_prompt,
      ...(this.draft.agent_id ? { agent_id: this.draft.agent_id } : {}),
    });
    this.shell.account.upsert(chat);
    this.shell.account.emit();
    this.shell.navigate(`/chats/${chat.id}`, { replace: true, quiet: true });
    await this.attach(chat.id);
  }

  /** Adopt a message an HTTP answer returned, and show its branch. */
  follow(message) {
    if (!message || !this.feed) return;
    this.chosen.set(parentKey(message), message.id);
    this.feed.adopt(message);
    this.schedule();
  }

  async stop() {
    for (const reply of this.streamingReplies()) {
      try {
        // answers the ended message, with the text and seq of its final event
        this.feed?.adopt(await api.post(`/api/messages/${encodeURIComponent(reply.id)}/stop`));
      } catch (error) {
        this.shell.toast(`Couldn't stop: ${error.message}`);
      }
    }
  }

  async retry(message) {
    try {
      const reply = await api.post(`/api/messages/${encodeURIComponent(message.id)}/retry`);
      this.follower.resume();
      this.follow(reply);
    } catch (error) {
      this.shell.toast(`Couldn't retry: ${error.message}`);
    }
  }

  nodeOf(target) {
    const el = target.closest(".msg");
    if (!el) return null;
    return this.nodes.get(el.dataset.id) ?? this.outboxNodes.get(el.dataset.id) ?? null;
  }

  stepOf(target) {
    const id = target.closest(".msg")?.dataset.id;
    return this.path.find((step) => step.message.id === id);
  }

  /**
   * Approve or deny a tool call that waits (POST .../tools/{id}); the answer
   * and the stream both move the card on, in this tab and every other.
   */
  async decide(step, toolId, decision) {
    const node = this.nodes.get(step.message.id);
    node?.decide(toolId, true);
    const path = `/api/messages/${encodeURIComponent(step.message.id)}/tools/${encodeURIComponent(toolId)}`;
    try {
      this.feed?.adopt(await api.post(path, { decision }));
    } catch (error) {
      // 409: answered already (another tab, or the reply was stopped): the stream shows how
      if (!(error instanceof ApiError && error.status === 409)) {
        this.shell.toast(`Couldn't ${decision}: ${error.message}`);
      }
    } finally {
      node?.decide(toolId, false);
    }
  }

  /** Clicks on message buttons (delegated). */
  action(event) {
    const codeCopy = event.target.closest(".code-copy");
    if (codeCopy) return this.copy(codeCopy.parentElement.querySelector("code").textContent, "Code copied");
    const button = event.target.closest("[data-action]");
    if (!button || button.disabled) return;
    const step = this.stepOf(button);
    const entry = this.outbox.find((e) => e.localId === button.closest(".msg")?.dataset.id);
    switch (button.dataset.action) {
      case "copy":
        return step && this.copy(step.message.content, "Copied");
      case "retry":
        return step && this.retry(step.message);
      case "approve":
      case "deny":
        return step && this.decide(step, button.dataset.tool, button.dataset.action);
      case "edit":
        return this.nodeOf(button)?.startEdit();
      case "edit-cancel":
        return this.nodeOf(button)?.stopEdit();
      case "prev":
      case "next": {
        if (!step) return;
        const sibling = step.siblings[step.index + (button.dataset.action === "next" ? 1 : -1)];
        if (sibling) this.chosen.set(parentKey(sibling), sibling.id);
        return this.render();
      }
      case "resend":
        return entry && entry.state === "failed" && this.deliver(entry);
      case "discard":
        this.outbox = this.outbox.filter((e) => e !== entry);
        this.outboxNodes.delete(entry?.localId);
        keepUnsent(this.chatId, this.outbox);
        if (entry) this.composer.restore(entry.content);
        return this.render();
    }
  }

  /** An edited user message is a new sibling with the same parent. */
  async editSubmitted(event) {
    event.preventDefault();
    const form = event.target;
    const step = this.stepOf(form);
    const text = form.querySelector("textarea").value;
    if (!step || text.trim() === "" || form.dataset.busy) return;
    form.dataset.busy = "yes";
    form.querySelector("[type=submit]").disabled = true;
    try {
      const answer = await api.post(`/api/chats/${encodeURIComponent(this.chatId)}/messages`, {
        content: text,
        parent_id: step.message.parent_id ?? null,
        model: this.composer.model,
      });
      this.nodeOf(form)?.stopEdit();
      this.follower.resume();
      this.follow(answer.user_message);
      this.follow(answer.assistant_message);
    } catch (error) {
      this.shell.toast(`Not sent: ${error.message}`);
    } finally {
      delete form.dataset.busy;
      form.querySelector("[type=submit]").disabled = false;
    }
  }

  async copy(text, done) {
    try {
      await navigator.clipboard.writeText(text);
      this.shell.toast(done);
    } catch {
      this.shell.toast("Couldn't copy to the clipboard.");
    }
  }

  async patchChat(changes) {
    try {
      const chat = await api.patch(`/api/chats/${encodeURIComponent(this.chatId)}`, changes);
      this.chatLoaded(chat);
    } catch (error) {
      this.shell.toast(`Couldn't save: ${error.message}`);
    }
  }

  /** Title and system prompt, for the settings dialog. */
  settings() {
    return this.chat
      ? { title: this.chat.title ?? "", system_prompt: this.chat.system_prompt ?? "" }
      : { ...this.draft };
  }

  /** Save the settings dialog; an emptied title keeps the old one (titles cannot be empty). */
  async saveSettings({ title, system_prompt }) {
    const changes = title ? { title, system_prompt } : { system_prompt };
    if (this.chatId) await this.patchChat(changes);
    else this.draft = { ...this.draft, ...changes };
  }
}
