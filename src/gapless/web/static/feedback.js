/**
 * Thumbs up / down under a finished reply, with an optional comment after a
 * thumbs down (what ChatGPT users expect). The caller's feedback on a chat is
 * loaded once per chat (GET /api/chats/{id}/feedback) and shared by its
 * replies; a click posts at once (POST /api/messages/{id}/feedback), clicking
 * the pressed thumb again takes it back (DELETE).
 *
 * No <form> here: the chat view treats a submit inside the message list as an
 * edited message. The comment is set as text, never as markup. Beside the
 * thumbs, "Add to dataset" makes the reply a dataset item.
 */
import { api } from "./api.js";
import { h } from "./figures.js";

const UP = '<path d="M7 11v9H4v-9h3zm0 0l4-8a2 2 0 0 1 2 2v4h5.5a2 2 0 0 1 2 2.3l-1.2 7a2 2 0 0 1-2 1.7H7"/>';
const DOWN = '<path d="M17 13V4h3v9h-3zm0 0l-4 8a2 2 0 0 1-2-2v-4H5.5a2 2 0 0 1-2-2.3l1.2-7a2 2 0 0 1 2-1.7H17"/>';

/** chat id -> Promise of {message id: feedback} (the signed-in user's; forgotten at sign-out) */
const loaded = new Map();
window.addEventListener("gapless:signed-out", () => loaded.clear());

function feedbackOf(chatId) {
  if (!loaded.has(chatId)) {
    const found = api
      .get(`/api/chats/${encodeURIComponent(chatId)}/feedback`)
      .then((answer) => answer.feedback)
      .catch(() => ({}));
    loaded.set(chatId, found);
  }
  return loaded.get(chatId);
}

function icon(paths) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.innerHTML = paths; // app-written markup
  return svg;
}

export class Thumbs {
  /** @param {{id: string, chat_id: string}} message  a finished reply */
  constructor(message) {
    this.message = message;
    this.value = null;
    this.up = h("button", { type: "button", class: "action thumb", "aria-label": "Good reply", title: "Good reply", "aria-pressed": "false", onclick: () => this.choose("up") }, icon(UP));
    this.down = h("button", { type: "button", class: "action thumb", "aria-label": "Bad reply", title: "Bad reply", "aria-pressed": "false", onclick: () => this.choose("down") }, icon(DOWN));
    this.text = h("textarea", { class: "thumbs-text", rows: "2", maxlength: "5000", "aria-label": "What was wrong with this reply?", placeholder: "What was wrong? (optional)" });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.sendComment();
      }
      if (event.key === "Escape") this.comment.hidden = true;
      event.stopPropagation();
    });
    this.comment = h("div", { class: "thumbs-comment", hidden: true },
      this.text,
      h("div", { class: "thumbs-comment-actions" },
        h("button", { type: "button", class: "button small", onclick: () => (this.comment.hidden = true) }, "Skip"),
        h("button", { type: "button", class: "button small primary thumbs-send", onclick: () => this.sendComment() }, "Send feedback"),
      ),
    );
    this.saved = h("span", { class: "thumbs-saved muted small", hidden: true });
    this.el = h("span", { class: "thumbs", "data-message": message.id }, this.up, this.down, this.saved);
    this.panel = this.comment; // placed under the reply's actions by the message node
    feedbackOf(message.chat_id).then((all) => this.show(all[message.id] ?? null));
  }

  show(feedback) {
    this.value = feedback?.value ?? null;
    this.up.setAttribute("aria-pressed", String(this.value === "up"));
    this.down.setAttribute("aria-pressed", String(this.value === "down"));
    this.el.dataset.value = this.value ?? "";
    this.saved.hidden = !feedback?.comment;
    this.saved.textContent = feedback?.comment ? "Comment sent" : "";
    this.saved.title = feedback?.comment ?? "";
  }

  async remember(feedback) {
    const all = await feedbackOf(this.message.chat_id);
    if (feedback === null) delete all[this.message.id];
    else all[this.message.id] = feedback;
    this.show(feedback);
  }

  async choose(value) {
    const url = `/api/messages/${encodeURIComponent(this.message.id)}/feedback`;
    try {
      if (this.value === value) {
        await api.delete(url);
        this.comment.hidden = true;
        return this.remember(null);
      }
      await this.remember(await api.post(url, { value }));
      this.comment.hidden = value !== "down";
      if (value === "down") this.text.focus();
    } catch (error) {
      this.fail(error);
    }
  }

  fail(error) {
    this.saved.hidden = false;
    this.saved.textContent = `Not saved: ${error.message}`;
  }

  async sendComment() {
    const url = `/api/messages/${encodeURIComponent(this.message.id)}/feedback`;
    try {
      await this.remember(await api.post(url, { value: "down", comment: this.text.value }));
      this.comment.hidden = true;
    } catch (error) {
      this.fail(error);
    }
  }
}

const DATASET = '<ellipse cx="12" cy="6" rx="7" ry="3"/><path d="M5 6v6c0 1.7 3.1 3 7 3M19 6v4M5 12v6c0 1.7 3.1 3 7 3M18 14v6M15 17h6"/>';

/** The account's datasets for the "Add to dataset" pickers (loaded once, again after a new one). */
let datasets = null;
window.addEventListener("gapless:signed-out", () => (datasets = null));

function datasetsOf() {
  datasets ??= api.get("/api/datasets").then((answer) => answer.datasets).catch((error) => {
    datasets = null;
    throw error;
  });
  return datasets;
}

/**
 * "Add to dataset" beside the thumbs: pick a dataset and the reply becomes an
 * item (POST /api/datasets/{id}/items/from-reply): the conversation up to its
 * question as input, the reply as the expected output.
 */
export class AddToDataset {
  /** @param {{id: string}} message  a finished reply */
  constructor(message) {
    this.message = message;
    this.el = h("button", { type: "button", class: "action add-to-dataset", "aria-label": "Add to dataset", title: "Add to dataset", "aria-expanded": "false", onclick: () => this.toggle() }, icon(DATASET));
    this.pick = h("select", { class: "dataset-pick-select", "aria-label": "Dataset" });
    this.add = h("button", { type: "button", class: "button small primary", onclick: () => this.send() }, "Add");
    this.note = h("span", { class: "muted small dataset-pick-note", role: "status" });
    this.panel = h("div", { class: "dataset-pick", hidden: true },
      this.pick, this.add,
      h("button", { type: "button", class: "button small", onclick: () => this.toggle(false) }, "Cancel"),
      this.note);
  }

  async toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.el.setAttribute("aria-expanded", String(open));
    if (!open) return;
    this.note.replaceChildren();
    try {
      const found = await datasetsOf();
      this.pick.replaceChildren(...found.map((d) => h("option", { value: d.id }, d.name)));
      this.pick.hidden = this.add.hidden = found.length === 0;
      if (found.length === 0) {
        this.note.replaceChildren("No datasets yet. ", h("a", { href: "/datasets", "data-link": true }, "Create one"));
      }
      this.pick.focus();
    } catch (error) {
      this.note.textContent = `Couldn't load datasets: ${error.message}`;
    }
  }

  async send() {
    const id = this.pick.value;
    const name = this.pick.selectedOptions[0]?.textContent ?? "the dataset";
    this.add.disabled = true;
    try {
      await api.post(`/api/datasets/${encodeURIComponent(id)}/items/from-reply`, { message_id: this.message.id });
      this.note.replaceChildren("Added to ", h("a", { href: `/datasets/${encodeURIComponent(id)}`, "data-link": true }, name));
      this.el.dataset.added = id;
    } catch (error) {
      this.note.textContent = `Not added: ${error.message}`;
    } finally {
      this.add.disabled = false;
    }
  }
}
