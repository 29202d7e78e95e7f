/**
 * The playground (`/playground`): a prompt version with its variables against
 * a chosen model. It goes through the public API exactly as a chat does: the
 * version is rendered on the server (POST /api/prompts/{name}/render), a chat
 * is created with the rendered text as its system prompt, the user turn is
 * posted, and the reply streams through the same `ChatFeed` and `MessageNode`
 * as any chat, traced like any reply (its trace and its chat are linked).
 */
import { ApiError, api } from "./api.js";
import { h } from "./figures.js";
import { ChatFeed } from "./feed.js";
import { MessageNode } from "./message.js";

const enc = encodeURIComponent;

/** The trace of a reply (observe/recorder.py `trace_id_of`). */
const traceOf = (replyId) => `trc_${replyId.includes("_") ? replyId.slice(replyId.indexOf("_") + 1) : replyId}`;

export class PlaygroundView {
  constructor(shell) {
    this.shell = shell;
    this.root = h("div", { class: "evals-inner playground" });
    this.feed = null;
    this.prompts = [];
  }

  hide() {
    this.feed?.close();
    this.feed = null;
    this.root.replaceChildren();
  }

  async show() {
    this.shell.setTitle("Playground");
    const params = new URLSearchParams(location.search);
    try {
      this.prompts = (await api.get("/api/prompts")).prompts;
    } catch (error) {
      this.shell.toast(`Couldn't load prompts: ${error.message}`);
      this.prompts = [];
    }
    this.promptPick = h("select", { id: "playground-prompt", "aria-label": "Prompt" },
      this.prompts.map((p, i) => h("option", { value: i, selected: p.name === params.get("prompt") && (!params.get("account_id") || p.account_id === params.get("account_id")) }, p.name)));
    this.versionPick = h("select", { id: "playground-version", "aria-label": "Version" });
    this.modelPick = h("select", { id: "playground-model", "aria-label": "Model" },
      this.shell.models.models.map((m) => h("option", { value: m.id }, m.label ?? m.id)));
    this.variables = h("div", { class: "playground-variables" });
    this.system = h("pre", { class: "prompt-content playground-system", "aria-label": "Rendered prompt" });
    this.question = h("textarea", { id: "playground-input", rows: "3", placeholder: "The user's message", "aria-label": "User message" });
    this.run = h("button", { type: "submit", class: "button primary", id: "playground-run" }, "Run");
    this.error = h("p", { class: "form-error", role: "alert", hidden: true });
    // a chat has no temperature or token limit of its own yet: say so rather than pretend
    this.note = h("p", { class: "muted small", id: "playground-note", hidden: true },
      "This version's temperature and max tokens are not applied here: the playground runs it as a chat, which has neither setting yet.");
    this.output = h("div", { class: "messages playground-output", "aria-label": "Reply" });
    this.links = h("p", { class: "small playground-links" });
    const form = h("form", { class: "agent-form", "aria-label": "Playground" },
      h("div", { class: "field-row two" },
        h("div", { class: "field" }, h("label", { for: "playground-prompt" }, "Prompt"), this.promptPick),
        h("div", { class: "field" }, h("label", { for: "playground-version" }, "Version"), this.versionPick)),
      h("div", { class: "field" }, h("label", { for: "playground-model" }, "Model"), this.modelPick),
      this.variables,
      h("div", { class: "field" }, h("label", { for: "playground-input" }, "User message"), this.question),
      this.note,
      this.error,
      h("div", { class: "form-actions" }, this.run));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    this.promptPick.addEventListener("change", () => this.promptChosen());
    this.versionPick.addEventListener("change", () => this.versionChosen());
    this.root.replaceChildren(
      this.prompts.length ? form : h("p", { class: "muted" }, "No prompts yet. ", h("a", { href: "/prompts", "data-link": true }, "Create one"), "."),
      h("h2", {}, "System prompt"), this.system,
      this.output, this.links);
    if (this.prompts.length) await this.promptChosen(Number(params.get("version")) || null);
  }

  get chosen() {
    return this.prompts[Number(this.promptPick.value)];
  }

  base() {
    return `/api/prompts/${enc(this.chosen.name)}`;
  }

  query() {
    return `?account_id=${enc(this.chosen.account_id)}`;
  }

  async promptChosen(version = null) {
    const prompt = await api.get(this.base() + this.query());
    const pick = version ?? prompt.labels.production ?? prompt.labels.latest;
    this.versionPick.replaceChildren(...prompt.versions.map((v) =>
      h("option", { value: v.version, selected: v.version === pick }, [`v${v.version}`, ...v.labels].join(" · "))));
    await this.versionChosen();
  }

  async versionChosen() {
    this.version = await api.get(`${this.base()}/versions/${this.versionPick.value}${this.query()}`);
    const model = this.version.config?.model;
    if (model && this.shell.models.models.some((m) => m.id === model)) this.modelPick.value = model;
    const kept = Object.fromEntries([...this.variables.querySelectorAll("input")].map((i) => [i.name, i.value]));
    this.variables.replaceChildren(...this.version.variables.map((name) =>
      h("div", { class: "field" }, h("label", { for: `var-${name}` }, name),
        h("input", { id: `var-${name}`, name, value: kept[name] ?? "", "data-variable": name }))));
    this.system.textContent = this.version.content;
    const { temperature, max_tokens: maxTokens } = this.version.config ?? {};
    this.note.hidden = temperature === undefined && maxTokens === undefined;
  }

  values() {
    return Object.fromEntries([...this.variables.querySelectorAll("input")].map((i) => [i.name, i.value]));
  }

  async start() {
    this.error.hidden = true;
    this.run.disabled = true;
    try {
      const version = this.version;
      const rendered = await api.post(`${this.base()}/render${this.query()}`, { version: version.version, variables: this.values() });
      this.system.textContent = rendered.text;
      const chat = await api.post("/api/chats", {
        title: `Playground · ${rendered.name} v${rendered.version}`,
        model: this.modelPick.value,
        system_prompt: rendered.text,
        account_id: this.chosen.account_id,
      });
      this.watch(chat.id);
      await api.post(`/api/chats/${enc(chat.id)}/messages`, { content: this.question.value || "Hello" });
    } catch (failure) {
      this.error.textContent = failure instanceof ApiError ? failure.message : String(failure);
      this.error.hidden = false;
    } finally {
      this.run.disabled = false;
    }
  }

  /** Follow the playground's chat with the chat's own feed; draw its messages as a chat does. */
  watch(chatId) {
    this.feed?.close();
    this.output.replaceChildren();
    this.links.replaceChildren(h("a", { href: `/chats/${enc(chatId)}`, "data-link": true }, "Open as a chat"));
    const nodes = new Map();
    this.feed = new ChatFeed(chatId, {
      onChat: () => {},
      onGone: () => {},
      onConnection: () => {},
      onMessages: (changed, replica) => {
        for (const id of changed) {
          const message = replica.messages.get(id);
          if (!message) continue;
          let node = nodes.get(id);
          if (!node) {
            node = new MessageNode(message.role === "user" ? "user" : "assistant");
            nodes.set(id, node);
            this.output.append(node.el);
            if (message.role === "assistant") {
              this.links.append(" · ", h("a", { href: `/traces/${enc(traceOf(id))}`, "data-link": true, id: "playground-trace" }, "Trace"));
            }
          }
          node.update(message);
        }
      },
    });
    this.feed.start();
  }
}
