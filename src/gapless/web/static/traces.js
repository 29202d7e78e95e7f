/**
 * The trace list (`/traces`): every run newest first, with filters (status,
 * model, agent, cost and latency above a value, time range) and text search;
 * the filters live in the address (`/traces?status=failed`), so a view can be
 * shared; exports (JSONL, CSV) take the same filters. A row opens its trace.
 */
import { api } from "./api.js";
import { fmt, h } from "./figures.js";

const PAGE = 50;
const STATUSES = ["", "running", "requires_action", "complete", "failed", "cancelled", "interrupted"];

export class TracesView {
  constructor(shell) {
    this.shell = shell;
    this.next = null;
    this.search = h("input", { type: "search", name: "q", placeholder: "Search questions and answers", "aria-label": "Search" });
    this.status = h("select", { name: "status", "aria-label": "Status" },
      STATUSES.map((s) => h("option", { value: s, text: s ? s.replace("_", " ") : "Any status" })));
    this.model = h("select", { name: "model", "aria-label": "Model" }, h("option", { value: "", text: "Any model" }));
    this.agent = h("select", { name: "agent_id", "aria-label": "Agent" }, h("option", { value: "", text: "Any agent" }));
    this.minCost = h("input", { type: "number", name: "min_cost", min: "0", step: "0.001", placeholder: "Cost ≥ $", "aria-label": "Minimum cost" });
    this.minMs = h("input", { type: "number", name: "min_duration_ms", min: "0", step: "100", placeholder: "Duration ≥ ms", "aria-label": "Minimum duration (ms)" });
    this.since = h("input", { type: "datetime-local", name: "since", "aria-label": "Started after" });
    this.until = h("input", { type: "datetime-local", name: "until", "aria-label": "Started before" });
    this.inputs = [this.search, this.status, this.model, this.agent, this.minCost, this.minMs, this.since, this.until];
    this.form = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); this.apply(); } },
      this.search, this.status, this.model, this.agent, this.minCost, this.minMs, this.since, this.until,
      h("button", { type: "submit", class: "button small primary", text: "Filter" }),
      h("button", { type: "button", class: "button small", text: "Clear", onclick: () => this.clear() }));
    for (const input of [this.status, this.model, this.agent]) input.addEventListener("change", () => this.apply());
    this.jsonl = h("a", { class: "button small", text: "Export JSONL", download: "traces.jsonl" });
    this.csv = h("a", { class: "button small", text: "Export CSV", download: "traces.csv" });
    this.body = h("tbody");
    this.empty = h("p", { class: "muted list-empty", text: "No traces match.", hidden: true });
    this.more = h("button", { type: "button", class: "button", text: "Load more", hidden: true, onclick: () => this.load(false) });
    const columns = ["Started", "Question", "Agent", "Model", "Status", "Steps", "Tokens", "Cost", "Duration", "First chunk"];
    this.root = h("div", { class: "observe-inner traces" },
      h("div", { class: "observe-head" }, this.form, h("div", { class: "exports" }, this.jsonl, this.csv)),
      h("div", { class: "table-wrap" }, h("table", { class: "data traces-table" },
        h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { scope: "col", class: i >= 5 ? "num" : "", text: c })))),
        this.body)),
      this.empty, this.more);
  }

  async show() {
    this.shell.setTitle("Traces");
    this.fillChoices();
    const params = new URLSearchParams(location.search);
    for (const input of this.inputs) {
      const value = params.get(input.name) ?? "";
      input.value = input.type === "datetime-local" && value ? toLocal(value) : value;
    }
    await this.load(true);
  }

  hide() {}

  fillChoices() {
    if (this.model.options.length === 1) {
      for (const m of this.shell.models.models) this.model.append(h("option", { value: m.id, text: m.label || m.id }));
    }
    if (this.agent.options.length === 1) {
      for (const a of this.shell.agents.agents ?? []) this.agent.append(h("option", { value: a.id, text: a.name }));
    }
  }

  query() {
    const params = new URLSearchParams();
    for (const input of this.inputs) {
      if (!input.value) continue;
      params.set(input.name, input.type === "datetime-local" ? new Date(input.value).toISOString() : input.value.trim());
    }
    return params;
  }

  apply() {
    const params = this.query();
    const path = `/traces${params.size ? `?${params}` : ""}`;
    history.replaceState(null, "", path);
    this.load(true);
  }

  clear() {
    for (const input of this.inputs) input.value = "";
    this.apply();
  }

  async load(fresh) {
    const params = this.query();
    this.jsonl.href = `/api/traces/export?format=jsonl&${params}`;
    this.csv.href = `/api/traces/export?format=csv&${params}`;
    params.set("limit", String(PAGE));
    if (!fresh && this.next) params.set("cursor", this.next);
    let page;
    try {
      page = await api.get(`/api/traces?${params}`);
    } catch (error) {
      this.shell.toast(`Couldn't load traces: ${error.message}`);
      return;
    }
    const rows = page.traces.map((t) => this.row(t));
    if (fresh) this.body.replaceChildren(...rows);
    else this.body.append(...rows);
    this.next = page.next ?? null;
    this.more.hidden = this.next === null;
    this.empty.hidden = this.body.children.length > 0;
  }

  row(t) {
    const link = h("a", { href: `/traces/${encodeURIComponent(t.id)}`, "data-link": true, class: "question" },
      t.input || t.output || t.id);
    return h("tr", { "data-id": t.id, "data-status": t.status },
      h("td", { class: "nowrap", text: fmt.when(t.started_at) }),
      h("td", { class: "question-cell" }, link),
      h("td", { text: t.agent_name ?? "—" }),
      h("td", { class: "nowrap", text: t.model ?? "—" }),
      h("td", {}, h("span", { class: `status status-${t.status}`, text: t.status.replace("_", " ") })),
      h("td", { class: "num", text: String(t.steps) }),
      h("td", { class: "num", text: `${fmt.count(t.input_tokens)} / ${fmt.count(t.output_tokens)}` }),
      h("td", { class: "num", text: fmt.cost(t.cost) }),
      h("td", { class: "num", text: fmt.ms(t.duration_ms) }),
      h("td", { class: "num", text: fmt.ms(t.ttft_ms) }));
  }
}

function toLocal(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
