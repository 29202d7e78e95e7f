/**
 * One message on the page. A node owns its DOM and redraws only what changed:
 * a streaming reply patches its last Markdown block, a finished one is drawn
 * once. Buttons carry `data-action`; the chat view handles them by delegation.
 *
 * A reply without tool calls shows its thinking, then its text. Once it has a
 * tool part it shows its parts in order instead (PROTOCOL.md "Parts"): each
 * step's thinking, text and tool cards, one block per part, each redrawn
 * only when its part changed.
 */
import { AddToDataset, Thumbs } from "./feedback.js";
import { patch } from "./render.js";
import { ToolCard } from "./tools.js";

const ICONS = {
  copy: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="9" y="9" width="11" height="11" rx="2"/><path d="M5 15V5a2 2 0 0 1 2-2h8"/></svg>',
  retry: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7"/></svg>',
  edit: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4"/></svg>',
  prev: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M15 6l-6 6 6 6"/></svg>',
  next: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M9 6l6 6-6 6"/></svg>',
  warn: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 4l9 16H3L12 4zM12 10v4M12 17v.5"/></svg>',
};

/** Build an element from an HTML string of trusted, app-written markup. */
function element(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

const button = (action, label, icon, text = "") =>
  `<button type="button" class="action" data-action="${action}" aria-label="${label}" title="${label}">${ICONS[icon]}${text}</button>`;

const STOPPED = { cancelled: "Stopped", failed: "" };

/** A reply not ended yet: still written, or waiting for a person's approval. */
export const UNFINISHED = new Set(["pending", "streaming", "requires_action"]);

/** A tool call that has ended: the model's next step comes next. */
const TOOL_DONE = new Set(["complete", "failed", "denied"]);

const hasTools = (message) => Array.isArray(message.parts) && message.parts.some((part) => part.type === "tool");

export class MessageNode {
  /** @param {"user"|"assistant"} role */
  constructor(role) {
    this.role = role;
    this.drawn = { content: null, thinking: null, status: null, error: null, streaming: null };
    this.el =
      role === "user"
        ? element(`<article class="msg user">
            <div class="msg-body">
              <div class="bubble"><div class="content"></div></div>
              <form class="edit-form" hidden>
                <textarea class="edit-text" rows="3" aria-label="Edit message"></textarea>
                <div class="edit-actions">
                  <button type="button" class="button" data-action="edit-cancel">Cancel</button>
                  <button type="submit" class="button primary">Send</button>
                </div>
              </form>
              <div class="send-failed" role="alert" hidden>${ICONS.warn}<span class="send-failed-text"></span>
                <button type="button" class="link-button" data-action="resend">Retry</button>
                <button type="button" class="link-button" data-action="discard">Discard</button>
              </div>
              <div class="msg-actions">
                <span class="switcher" hidden></span>
                ${button("copy", "Copy message", "copy")}${button("edit", "Edit message", "edit")}
              </div>
            </div>
          </article>`)
        : element(`<article class="msg assistant">
            <span class="avatar bot" aria-hidden="true"></span>
            <div class="msg-body">
              <details class="thinking" hidden><summary><span class="thinking-label">Thinking</span></summary>
                <div class="thinking-text"></div></details>
              <div class="typing" role="status" aria-label="Assistant is typing" hidden><span></span><span></span><span></span></div>
              <div class="content markdown"></div>
              <div class="msg-error" role="alert" hidden>${ICONS.warn}<span class="msg-error-text"></span>
                <button type="button" class="button small" data-action="retry">Retry</button></div>
              <div class="msg-actions">
                <span class="switcher" hidden></span>
                ${button("copy", "Copy reply", "copy")}${button("retry", "Regenerate reply", "retry")}
                <a class="action trace-link" data-link href="/traces" aria-label="Open trace" title="Open trace"><svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 6h10M8 12h12M6 18h8"/></svg></a>
                <span class="stopped muted small" hidden></span>
              </div>
            </div>
          </article>`);
    this.content = this.el.querySelector(".content");
    /** part id -> {kind, el, card?, drawn} of the parts layout */
    this.blocks = new Map();
    /** tool call ids whose decision this tab is posting */
    this.deciding = new Set();
  }

  /**
   * Draw `message` (a PROTOCOL Message), touching only what changed.
   * @returns {boolean} whether a reply drawn as streaming has just ended
   */
  update(message) {
    const el = this.el;
    el.dataset.id = message.id;
    const trace = el.querySelector(".trace-link"); // the reply's trace (observe/recorder.py trace_id_of)
    if (trace) trace.href = `/traces/trc_${message.id.slice(message.id.indexOf("_") + 1)}`;
    el.dataset.status = message.status;
    const streaming = UNFINISHED.has(message.status);
    el.setAttribute("aria-busy", String(streaming));
    if (this.role === "user") {
      if (this.drawn.content !== message.content) this.content.textContent = message.content;
    } else {
      this.drawAssistant(message, streaming);
    }
    const ended = this.drawn.streaming === true && !streaming;
    this.drawn.content = message.content;
    this.drawn.status = message.status;
    this.drawn.streaming = streaming;
    return ended;
  }

  drawAssistant(message, streaming) {
    const content = message.content ?? "";
    const thinking = message.thinking ?? "";
    if (hasTools(message)) {
      this.drawParts(message.parts, streaming);
    } else {
      if (content !== this.drawn.content || streaming !== this.drawn.streaming) {
        patch(this.content, content, { streaming });
      }
      if (thinking !== this.drawn.thinking || streaming !== this.drawn.streaming || content !== this.drawn.content) {
        this.drawThinking(thinking, streaming && content === "");
      }
    }
    this.el.querySelector(".typing").hidden = !this.waiting(message, streaming);
    const error = message.status === "failed" ? message.error?.message || "The model failed to reply." : "";
    if (error !== this.drawn.error) {
      this.el.querySelector(".msg-error").hidden = error === "";
      this.el.querySelector(".msg-error-text").textContent = error;
      this.drawn.error = error;
    }
    const stopped = this.el.querySelector(".stopped");
    stopped.textContent = STOPPED[message.status] ?? "";
    stopped.hidden = stopped.textContent === "";
    this.el.querySelector('[data-action="retry"].action').disabled = streaming;
    if (message.status === "complete" && !this.thumbs && message.chat_id) {
      this.thumbs = new Thumbs(message); // feedback.js: thumbs up/down and a comment
      this.el.querySelector(".msg-actions").after(this.thumbs.panel);
      this.el.querySelector(".stopped").before(this.thumbs.el);
      this.keep = new AddToDataset(message); // beside the thumbs: the reply as a dataset item
      this.thumbs.panel.after(this.keep.panel);
      this.el.querySelector(".stopped").before(this.keep.el);
    }
  }

  /**
   * Whether the reply is working with nothing to show for it yet: before its
   * first text, or (with tools) between a step's finished calls and the next
   * step's first words.
   */
  waiting(message, streaming) {
    if (!streaming || message.status === "requires_action") return false;
    if (!hasTools(message)) return !message.content && !message.thinking;
    const last = message.parts.at(-1);
    return last.type === "tool" && TOOL_DONE.has(last.status);
  }

  /**
   * The parts layout: `.content` holds one block per part, in order. Blocks
   * are only appended (parts are), and each redraws when its own part changed.
   */
  drawParts(parts, streaming) {
    if (this.blocks.size === 0) {
      // leaving the thinking-then-text layout: its blocks become parts
      this.content.replaceChildren();
      this.content.classList.remove("markdown");
      this.content.classList.add("steps");
      this.el.classList.add("has-steps");
      this.el.querySelector(".thinking").hidden = true;
    }
    parts.forEach((part, index) => {
      const last = index === parts.length - 1;
      let block = this.blocks.get(part.id);
      if (block === undefined) {
        block = this.block(part);
        this.blocks.set(part.id, block);
        this.content.appendChild(block.el);
      }
      const live = streaming && last;
      // the reducer makes a new object of a part it changes: an unchanged part is the same object
      if (part === block.drawn.part && live === block.drawn.live) return;
      if (part.type === "tool") {
        if (part.status !== "awaiting_approval") this.deciding.delete(part.id);
        block.card.update(part, { busy: this.deciding.has(part.id) });
        block.drawn = { part, live };
        return;
      }
      if (part.type === "thinking") {
        if (live && block.drawn.live === undefined) block.el.open = true;
        block.el.querySelector(".thinking-text").textContent = part.text;
        block.el.querySelector(".thinking-label").textContent = live ? "Thinking…" : "Thoughts";
        block.el.classList.toggle("active", live);
        if (block.drawn.live && !live) block.el.open = false;
      } else {
        patch(block.el, part.text ?? "", { streaming: live });
        block.el.classList.toggle("live", live);
      }
      block.drawn = { part, live };
    });
    if (this.blocks.size > parts.length) {
      // only a replaced Message could drop a part (parts are append-only): drop its block too
      const ids = new Set(parts.map((part) => part.id));
      for (const [id, block] of this.blocks) if (!ids.has(id)) (block.el.remove(), this.blocks.delete(id));
    }
  }

  /** A new block for `part`. */
  block(part) {
    if (part.type === "tool") {
      const card = new ToolCard();
      return { el: card.el, card, drawn: {} };
    }
    if (part.type === "thinking") {
      const el = element(`<details class="thinking step-thinking"><summary><span class="thinking-label">Thinking</span></summary>
        <div class="thinking-text"></div></details>`);
      return { el, drawn: {} };
    }
    const el = document.createElement("div");
    el.className = "markdown step-text";
    return { el, drawn: {} };
  }

  /** This tab posts a decision on `toolId`: its buttons wait until the answer (or the stream) moves on. */
  decide(toolId, busy) {
    if (busy) this.deciding.add(toolId);
    else this.deciding.delete(toolId);
    this.el.querySelector(`.tool-card[data-tool="${CSS.escape(toolId)}"]`)
      ?.querySelectorAll(".tool-approval button").forEach((b) => (b.disabled = busy));
  }

  /** Thinking streams open; once the answer starts it folds away (unless the reader opened it). */
  drawThinking(thinking, active) {
    const details = this.el.querySelector(".thinking");
    details.hidden = thinking === "";
    if (thinking !== this.drawn.thinking) this.el.querySelector(".thinking-text").textContent = thinking;
    this.el.querySelector(".thinking-label").textContent = active ? "Thinking…" : "Thoughts";
    details.classList.toggle("active", active);
    if (active && details.dataset.auto === undefined) {
      details.open = true;
      details.dataset.auto = "opened";
    } else if (!active && details.dataset.auto === "opened") {
      details.open = false;
      details.dataset.auto = "folded";
    }
    this.drawn.thinking = thinking;
  }

  /** Show "‹ 2/3 ›" when the message has siblings. */
  setSiblings(index, count) {
    const switcher = this.el.querySelector(".switcher");
    const key = `${index}/${count}`;
    if (switcher.dataset.key === key) return;
    switcher.dataset.key = key;
    switcher.hidden = count < 2;
    switcher.innerHTML =
      count < 2
        ? ""
        : `<button type="button" class="action" data-action="prev" aria-label="Previous version" ${index === 0 ? "disabled" : ""}>${ICONS.prev}</button>` +
          `<span class="switcher-count">${index + 1}/${count}</span>` +
          `<button type="button" class="action" data-action="next" aria-label="Next version" ${index === count - 1 ? "disabled" : ""}>${ICONS.next}</button>`;
  }

  /** For a message not sent yet (the outbox): sending, or failed with a reason. */
  setOutbox(entry) {
    this.el.classList.add("local");
    this.el.dataset.id = entry.localId;
    this.el.dataset.status = entry.state;
    if (this.drawn.content !== entry.content) this.content.textContent = entry.content;
    this.drawn.content = entry.content;
    const failed = this.el.querySelector(".send-failed");
    failed.hidden = entry.state !== "failed";
    this.el.querySelector(".send-failed-text").textContent = entry.state === "failed" ? `Not sent: ${entry.error}` : "";
    this.el.querySelector(".msg-actions").hidden = true;
  }

  /** Swap the bubble for an editor holding the text (user messages). */
  startEdit() {
    const form = this.el.querySelector(".edit-form");
    const textarea = form.querySelector("textarea");
    textarea.value = this.drawn.content ?? "";
    form.hidden = false;
    this.el.classList.add("editing");
    this.el.querySelector(".bubble").hidden = true;
    this.el.querySelector(".msg-actions").hidden = true;
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  }

  stopEdit() {
    this.el.querySelector(".edit-form").hidden = true;
    this.el.classList.remove("editing");
    this.el.querySelector(".bubble").hidden = false;
    this.el.querySelector(".msg-actions").hidden = false;
  }
}
