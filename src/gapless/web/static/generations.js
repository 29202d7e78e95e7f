/** The generations page: every reply's model, tokens, timing, cost and error. */
import { api } from "./api.js";
import { escapeHtml } from "./render.js";

const PAGE = 50;

const ms = (value) => (value === null || value === undefined ? "—" : value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`);
const count = (value) => (value === null || value === undefined ? "—" : Number(value).toLocaleString());
const cost = (value) => (value === null || value === undefined ? "—" : `$${Number(value).toFixed(Number(value) < 0.01 ? 5 : 3)}`);
const rate = (value) =>
  value === null || value === undefined ? "—" : value >= 100 ? Math.round(value).toLocaleString() : Number(value).toFixed(1);
/** "14:05" today, "Nov 21, 14:05" on another day. */
function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  const time = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { month: "short", day: "numeric" })}, ${time}`;
}

export class GenerationsView {
  constructor(shell) {
    this.shell = shell;
    const $ = (id) => document.getElementById(id);
    this.root = $("generations-view");
    this.body = $("generations-body");
    this.empty = $("generations-empty");
    this.more = $("generations-more");
    this.filter = $("generations-model");
    this.next = null;
    this.more.addEventListener("click", () => this.load(false));
    this.filter.addEventListener("change", () => this.load(true));
  }

  async show() {
    this.root.hidden = false;
    this.shell.setTitle("Generations");
    if (this.filter.options.length === 1) {
      for (const model of this.shell.models.models) this.filter.append(new Option(model.label || model.id, model.id));
    }
    await this.load(true);
  }

  hide() {
    this.root.hidden = true;
  }

  async load(fresh) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (this.filter.value) query.set("model", this.filter.value);
    if (!fresh && this.next) query.set("before", this.next);
    let page;
    try {
      page = await api.get(`/api/generations?${query}`);
    } catch (error) {
      this.shell.toast(`Couldn't load generations: ${error.message}`);
      return;
    }
    const rows = page.generations.map((g) => {
      const row = document.createElement("tr");
      row.dataset.id = g.id;
      const tokens = `${count(g.input_tokens)} / ${count(g.output_tokens)}`;
      const reasoning = g.reasoning_tokens ? `<div class="muted small">${count(g.reasoning_tokens)} reasoning</div>` : "";
      row.innerHTML =
        `<td class="nowrap">${escapeHtml(when(g.started_at))}</td>` +
        `<td><a href="/chats/${encodeURIComponent(g.chat_id)}" data-link class="model-name">${escapeHtml(g.model ?? "")}</a>` +
        `<div class="muted small">${escapeHtml(g.provider ?? "")}</div></td>` +
        `<td><span class="status status-${escapeHtml(g.status ?? "")}">${escapeHtml(g.status ?? "")}</span></td>` +
        `<td class="num">${tokens}${reasoning}</td>` +
        `<td class="num">${ms(g.ttft_ms)}</td><td class="num">${ms(g.duration_ms)}</td>` +
        `<td class="num">${rate(g.tokens_per_second)}</td><td class="num">${cost(g.cost)}</td>` +
        `<td class="error-cell">${g.error ? `<span class="error-text" title="${escapeHtml(g.error.code ?? "")}">${escapeHtml(g.error.message ?? g.error.code ?? "")}</span>` : ""}</td>`;
      return row;
    });
    if (fresh) this.body.replaceChildren(...rows);
    else this.body.append(...rows);
    this.next = page.next ?? null;
    this.more.hidden = this.next === null;
    this.empty.hidden = this.body.children.length > 0;
  }
}
