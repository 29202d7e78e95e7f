/**
 * A trace (`/traces/{id}`): its figures, and a waterfall of its observations
 * (model calls, tool calls, waits) on one timeline, nested by parent, else by
 * step; a click on a row shows its figures and content (as text: inert). A
 * running trace grows live: the account stream's `trace.updated` refetches it.
 */
import { api } from "./api.js";
import { fmt, h, present } from "./figures.js";

const RUNNING = new Set(["running", "requires_action"]);

/** Observations as a forest: by `parent_id` when it names one, else under a step. */
export function forest(observations) {
  const byId = new Map(observations.map((o) => [o.id, { ...o, children: [] }]));
  const roots = [];
  const steps = new Map();
  for (const node of byId.values()) {
    const parent = node.parent_id ? byId.get(node.parent_id) : undefined;
    if (parent) parent.children.push(node);
    else if (node.step !== null && node.step !== undefined) {
      let step = steps.get(node.step);
      if (!step) {
        step = { id: `step-${node.step}`, kind: "step", name: `Step ${node.step}`, step: node.step, children: [] };
        steps.set(node.step, step);
        roots.push(step);
      }
      step.children.push(node);
    } else roots.push(node);
  }
  const start = (n) => (n.kind === "step" ? Math.min(...n.children.map(start)) : Date.parse(n.started_at));
  const end = (n) => (n.kind === "step" ? Math.max(...n.children.map(end)) : n.ended_at ? Date.parse(n.ended_at) : Date.now());
  const sort = (nodes) => {
    nodes.sort((a, b) => start(a) - start(b) || String(a.id).localeCompare(String(b.id)));
    for (const n of nodes) {
      sort(n.children);
      if (n.kind === "step") {
        n.startMs = start(n);
        n.endMs = end(n);
        n.status = n.children.some((c) => RUNNING.has(c.status)) ? "running"
          : n.children.find((c) => c.status !== "complete")?.status ?? "complete";
      }
    }
    return nodes;
  };
  return sort(roots);
}

export class TraceView {
  constructor(shell) {
    this.shell = shell;
    this.id = null;
    this.trace = null;
    this.selected = null;
    this.unlisten = null;
    this.head = h("div", { class: "trace-head" });
    this.waterfall = h("div", { class: "waterfall", role: "tree", "aria-label": "Waterfall" });
    this.detail = h("aside", { class: "trace-detail", "aria-label": "Details" });
    this.root = h("div", { class: "observe-inner trace" }, this.head,
      h("div", { class: "trace-body" }, this.waterfall, this.detail));
  }

  async show(id) {
    if (id !== this.id) this.selected = null;
    this.id = id;
    this.shell.setTitle("Trace");
    await this.load();
    this.follow();
  }

  hide() {
    this.unlisten?.();
    this.unlisten = null;
    clearTimeout(this.pending);
  }

  /** Refetch when the recorder says this trace changed (the account stream, through the
   * shell's one connection), and after a reconnect (a change may have been missed). */
  follow() {
    if (this.unlisten) return;
    this.unlisten = this.shell.account?.listen("trace.updated", (data) => {
      if (data.id !== this.id) return;
      clearTimeout(this.pending);
      this.pending = setTimeout(() => this.load(), 50);
    }, () => this.load()) ?? null;
  }

  async load() {
    let trace;
    try {
      trace = await api.get(`/api/traces/${encodeURIComponent(this.id)}`);
    } catch (error) {
      this.trace = null;
      this.head.replaceChildren(h("p", { class: "muted", text: error.status === 404 ? "No such trace." : error.message }));
      this.waterfall.replaceChildren();
      this.detail.replaceChildren();
      return;
    }
    this.trace = trace;
    this.draw();
  }

  draw() {
    const t = this.trace;
    this.root.dataset.status = t.status;
    this.shell.setTitle(t.input ? `Trace · ${t.input.slice(0, 60)}` : "Trace");
    const figure = (label, value) => h("div", { class: "figure" }, h("span", { class: "muted small", text: label }), h("strong", { text: value }));
    this.head.replaceChildren(...present(
      h("div", { class: "trace-title" },
        h("span", { class: `status status-${t.status}`, text: t.status.replace("_", " ") }),
        h("h2", { text: t.input || t.id }),
        // a judge's call is no chat's turn (evals/judge.py): its trace links to the evaluators
        t.reply_id
          ? h("a", { class: "button small", href: `/chats/${encodeURIComponent(t.chat_id)}?message=${encodeURIComponent(t.reply_id)}`, "data-link": true, text: "Open chat" })
          : h("a", { class: "button small", href: "/evaluators", "data-link": true, text: "Evaluators" })),
      t.error ? h("p", { class: "error-text", text: `${t.error.code}: ${t.error.message}` }) : null,
      h("div", { class: "figures" },
        figure("Started", fmt.when(t.started_at)),
        figure("Duration", RUNNING.has(t.status) ? "running…" : fmt.ms(t.duration_ms)),
        figure("First chunk", fmt.ms(t.ttft_ms)),
        figure("Steps", String(t.steps)),
        figure("Tool calls", String(t.tools)),
        figure("Tokens", `${fmt.count(t.input_tokens)} in · ${fmt.count(t.output_tokens)} out`),
        figure("Cost", fmt.cost(t.cost)),
        figure("Model", t.model ?? "—"),
        figure("Agent", t.agent_name ?? "—"))));
    this.drawWaterfall();
    this.drawDetail();
  }

  drawWaterfall() {
    const t = this.trace;
    const origin = Date.parse(t.started_at);
    const ends = t.observations.map((o) => (o.ended_at ? Date.parse(o.ended_at) : Date.now()));
    const end = Math.max(t.ended_at ? Date.parse(t.ended_at) : Date.now(), ...ends, origin + 1);
    const span = end - origin;
    const rows = [];
    const walk = (nodes, depth) => {
      for (const node of nodes) {
        rows.push(this.row(node, depth, origin, span));
        walk(node.children, depth + 1);
      }
    };
    walk(forest(t.observations), 0);
    const scale = h("div", { class: "wf-row wf-scale", "aria-hidden": "true" }, h("div", { class: "wf-name" }),
      h("div", { class: "wf-track" }, [0, 0.25, 0.5, 0.75, 1].map((f) =>
        h("span", { style: `left:${f * 100}%`, text: fmt.ms(span * f) }))));
    this.waterfall.replaceChildren(scale, ...rows);
  }

  row(node, depth, origin, span) {
    const start = node.kind === "step" ? node.startMs : Date.parse(node.started_at);
    const stop = node.kind === "step" ? node.endMs : node.ended_at ? Date.parse(node.ended_at) : Date.now();
    const left = ((start - origin) / span) * 100;
    const width = Math.max(0.4, ((stop - start) / span) * 100);
    const running = RUNNING.has(node.status);
    const label = node.kind === "step" ? node.name : `${node.name}`;
    const row = h("div", {
      class: `wf-row kind-${node.kind}${node.id === this.selected ? " selected" : ""}`,
      role: "treeitem", "aria-level": String(depth + 1), "data-id": node.id, "data-kind": node.kind,
      "data-status": node.status, "data-depth": String(depth), tabindex: node.kind === "step" ? undefined : "0",
      onclick: () => node.kind !== "step" && this.select(node.id),
      onkeydown: (e) => e.key === "Enter" && node.kind !== "step" && this.select(node.id),
    },
      h("div", { class: "wf-name", style: `padding-left:${8 + depth * 16}px` },
        node.kind === "step" ? null : h("span", { class: `badge badge-${node.kind}`, text: node.kind === "generation" ? "LLM" : node.kind }),
        h("span", { class: "wf-label", text: label, title: label })),
      h("div", { class: "wf-track" },
        h("div", { class: `wf-bar status-${node.status}${running ? " running" : ""}`, style: `left:${left}%;width:${width}%` }),
        node.ttft_ms ? h("div", { class: "wf-ttft", style: `left:${left + (node.ttft_ms / span) * 100}%`, title: `first chunk ${fmt.ms(node.ttft_ms)}` }) : null,
        left + width > 80
          ? h("span", { class: "wf-time before", style: `left:${left}%`, text: running ? "running…" : fmt.ms(stop - start) })
          : h("span", { class: "wf-time", style: `left:${left + width}%`, text: running ? "running…" : fmt.ms(stop - start) })));
    return row;
  }

  select(id) {
    this.selected = id;
    for (const row of this.waterfall.querySelectorAll(".wf-row")) row.classList.toggle("selected", row.dataset.id === id);
    this.drawDetail();
  }

  drawDetail() {
    const o = this.trace?.observations.find((x) => x.id === this.selected);
    if (!o) {
      this.detail.replaceChildren(h("p", { class: "muted small", text: "Select a model call or a tool call to see its figures and content." }));
      return;
    }
    const pairs = [
      ["Status", o.status], ["Started", fmt.when(o.started_at)], ["Duration", o.ended_at ? fmt.ms(o.duration_ms) : "running…"],
      ["First chunk", o.ttft_ms !== null && o.ttft_ms !== undefined ? fmt.ms(o.ttft_ms) : null],
      ["Model", o.model], ["Provider", o.provider], ["Step", o.step],
      ["Input tokens", o.input_tokens], ["Output tokens", o.output_tokens], ["Reasoning tokens", o.reasoning_tokens || null],
      ["Cached tokens", o.cached_tokens || null], ["Cost", o.cost !== null && o.cost !== undefined ? fmt.cost(o.cost) : null],
      ["Finish reason", o.finish_reason], ["Call id", o.attributes?.call_id],
      ["Error", o.error ? `${o.error.code}: ${o.error.message}` : null],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    const text = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));
    const block = (title, value) => (value === null || value === undefined || value === "" ? null
      : h("section", { class: "content-block" }, h("h4", { text: title }), h("pre", { text: text(value) })));
    const messages = Array.isArray(o.input)
      ? h("section", { class: "content-block" }, h("h4", { text: "Input messages" }),
        o.input.map((m) => h("div", { class: "io-message" }, h("span", { class: "role", text: m.role ?? "" }),
          h("pre", { text: text(m.content ?? m) }))))
      : block(o.kind === "tool" ? "Arguments" : "Input", o.input);
    const extra = { ...(o.attributes ?? {}) };
    delete extra.call_id;
    this.detail.replaceChildren(...present(
      h("h3", { text: o.name }),
      h("dl", { class: "pairs" }, pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })])),
      messages,
      block("Output", o.output),
      Object.keys(extra).length ? block("Attributes", extra) : null));
  }
}
