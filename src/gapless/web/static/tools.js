/**
 * A tool call in a reply, as a card: its name, its arguments as they stream
 * (raw text while the model writes them, formatted JSON once they are whole),
 * a status badge, Approve / Deny while it waits for a person, its output
 * (folded; Markdown, or JSON shown as code) and its error.
 *
 * Everything a tool or a model wrote is untrusted: names, arguments and
 * errors are set as text, and the output goes through render.js's one
 * pipeline (marked, then DOMPurify), as replies do. The card redraws only
 * the fields that changed. Its buttons carry `data-action` ("approve",
 * "deny") and `data-tool`; the chat view handles them by delegation.
 */
import { toFragment } from "./render.js";

/** What the badge says for each status of PROTOCOL.md's tool part. */
export const STATUS_TEXT = {
  input: "Preparing…",
  awaiting_approval: "Needs approval",
  running: "Running…",
  complete: "Done",
  failed: "Failed",
  denied: "Denied",
  cancelled: "Cancelled",
};

const ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M14.7 6.3a4 4 0 0 0-5.4 5.1L4 16.7V20h3.3l5.3-5.3a4 4 0 0 0 5.1-5.4l-2.6 2.6-2.6-.6-.6-2.6 2.6-2.6z"/></svg>';

/**
 * Parse `text` as JSON; `undefined` when it is not (yet) whole JSON.
 * @param {string} text
 */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The arguments as shown: pretty JSON once the model finished them and they parse. */
export function formatArguments(text, status) {
  if (status === "input" || text.trim() === "") return text;
  const value = parseJson(text);
  return value === undefined ? text : JSON.stringify(value, null, 2);
}

/** A Markdown code fence longer than any backtick run in `text`, so it cannot be closed early. */
function fenced(text, language) {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = "`".repeat(longest + 1);
  return `${fence}${language}\n${text}\n${fence}`;
}

/**
 * An output as Markdown source: JSON objects and arrays as a fenced, pretty
 * JSON block; anything else as the Markdown text it is.
 * @param {string} output
 */
export function outputSource(output) {
  const trimmed = output.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    const value = parseJson(trimmed);
    if (value !== undefined) return fenced(JSON.stringify(value, null, 2), "json");
  }
  return output;
}

/** A one-line summary of an output, for the folded state: compact JSON, or its first line. */
export function outputSummary(output) {
  const trimmed = output.trim();
  const value = trimmed.startsWith("{") || trimmed.startsWith("[") ? parseJson(trimmed) : undefined;
  const line = value === undefined ? trimmed.split("\n")[0].replace(/\s+/g, " ") : JSON.stringify(value);
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}

export class ToolCard {
  constructor() {
    const template = document.createElement("template");
    template.innerHTML = `<section class="tool-card" aria-label="Tool call">
        <header class="tool-head">${ICON}<code class="tool-name"></code>
          <span class="tool-status" role="status"></span></header>
        <pre class="tool-args"><code></code></pre>
        <div class="tool-approval" hidden>
          <span class="tool-ask">Run this tool?</span>
          <button type="button" class="button small" data-action="deny">Deny</button>
          <button type="button" class="button small primary" data-action="approve">Approve</button>
        </div>
        <div class="tool-error" role="alert" hidden></div>
        <details class="tool-output" hidden>
          <summary><span class="tool-output-label">Output</span> <span class="tool-output-summary muted"></span></summary>
          <div class="tool-output-body markdown"></div>
        </details>
      </section>`;
    this.el = /** @type {HTMLElement} */ (template.content.firstElementChild);
    this.drawn = { name: null, raw: null, status: null, output: null, error: null };
  }

  /**
   * Draw a tool part (PROTOCOL.md "Parts"), touching only what changed.
   * `busy` disables the approval buttons while this tab's decision is on its way.
   * @param {{id: string, name?: string, arguments?: string, status?: string, output?: string|null, error?: {code: string, message: string}|null}} part
   * @param {{busy?: boolean}} [options]
   */
  update(part, { busy = false } = {}) {
    const el = this.el;
    const status = part.status ?? "input";
    el.dataset.tool = part.id;
    el.dataset.status = status;
    const name = part.name ?? "";
    if (name !== this.drawn.name) {
      el.querySelector(".tool-name").textContent = name;
      el.setAttribute("aria-label", `Tool call ${name}`);
      el.querySelector('[data-action="approve"]').setAttribute("aria-label", `Approve ${name}`);
      el.querySelector('[data-action="deny"]').setAttribute("aria-label", `Deny ${name}`);
    }
    const raw = part.arguments ?? "";
    if (raw !== this.drawn.raw || status !== this.drawn.status) {
      const args = formatArguments(raw, status);
      el.querySelector(".tool-args code").textContent = args;
      el.querySelector(".tool-args").hidden = args === "";
    }
    if (status !== this.drawn.status) {
      el.querySelector(".tool-status").textContent = STATUS_TEXT[status] ?? status;
      el.querySelector(".tool-approval").hidden = status !== "awaiting_approval";
    }
    for (const button of el.querySelectorAll(".tool-approval button")) {
      button.dataset.tool = part.id;
      button.disabled = busy;
    }
    const output = typeof part.output === "string" ? part.output : null;
    if (output !== this.drawn.output) this.drawOutput(output);
    const error = part.error ? part.error.message || part.error.code || "The tool failed." : "";
    if (error !== this.drawn.error) {
      el.querySelector(".tool-error").textContent = error;
      el.querySelector(".tool-error").hidden = error === "";
    }
    this.drawn = { name, raw, status, output, error };
  }

  drawOutput(output) {
    const details = this.el.querySelector(".tool-output");
    details.hidden = output === null;
    const body = this.el.querySelector(".tool-output-body");
    if (output === null) {
      body.replaceChildren();
      return;
    }
    body.replaceChildren(toFragment(outputSource(output)));
    this.el.querySelector(".tool-output-summary").textContent = outputSummary(output);
  }
}
