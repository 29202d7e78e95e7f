/**
 * One experiment run (`/experiments/{id}`): its target, status and progress,
 * and its items (input, expected, output, the evaluators' pass/fail marks,
 * cost, duration, a link to the item's trace). It moves live: the account
 * stream's `experiment.updated` events carry the run's counters (and the item
 * that changed); events and fetches are applied by `progress`, so an older
 * one never undoes a newer (an item keeps the progress it was drawn at).
 * Also the helpers the dataset and comparison pages share: score marks, an
 * input as text, a target as text. Everything a user or a model wrote is set
 * as text.
 */
import { ApiError, api } from "./api.js";
import { fmt, h, present } from "./figures.js";

const enc = encodeURIComponent;
const ACTIVE = new Set(["queued", "running", "stopping"]);

/** An item's input as a reader takes it: its last user message (and how many turns before). */
export function inputText(input) {
  if (input === null || input === undefined) return "—";
  if (typeof input === "string") return input;
  const messages = input.messages ?? [];
  const last = [...messages].reverse().find((m) => m.role === "user") ?? messages.at(-1);
  const before = messages.length > 1 ? `(${messages.length} messages) ` : "";
  return `${before}${last?.content ?? ""}`;
}

/** `name=value` pairs of an item's variables, or "". */
export function variablesText(input) {
  const variables = input && typeof input === "object" ? input.variables ?? {} : {};
  return Object.entries(variables).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
}

/** What a run ran: "Agent Weather · demo:echo" or "prompt support v3 · demo:echo". */
export function targetText(target, agents = []) {
  if (!target) return "—";
  if (target.prompt) {
    const ref = target.prompt.version ? `v${target.prompt.version}` : target.prompt.label ?? "production";
    return `prompt ${target.prompt.name} ${ref}${target.model ? ` · ${target.model}` : ""}`;
  }
  const agent = agents.find((a) => a.id === target.agent_id);
  return `agent ${agent?.name ?? target.agent_id}${target.model ? ` · ${target.model}` : ""}`;
}

/** One evaluator result as a mark: ✓ / ✗ / ! (an error) or its value. */
export function scoreMark(result) {
  const kind = result.error ? "error" : result.passed === true ? "pass" : result.passed === false ? "fail" : "value";
  const sign = { error: "!", pass: "✓", fail: "✗", value: "" }[kind];
  const value = result.label ?? (result.value === null || result.value === undefined ? null
    : result.data_type === "boolean" ? null : Number(result.value).toFixed(2).replace(/\.?0+$/, ""));
  const title = result.error ? `error: ${result.error}` : result.explanation ?? "";
  return h("span", { class: `score-mark score-${kind}`, title: title || undefined, "data-score": result.name, "data-kind": kind },
    sign ? h("span", { class: "score-sign", "aria-hidden": "true" }, sign) : null,
    `${result.name}${value !== null ? ` ${value}` : ""}`,
    h("span", { class: "visually-hidden" }, kind === "value" ? "" : ` ${kind === "error" ? "error" : kind === "pass" ? "passed" : "failed"}`));
}

export function scoreMarks(results) {
  return h("span", { class: "score-marks" }, (results ?? []).map(scoreMark));
}

export function statusChip(status) {
  return h("span", { class: `status status-${status}` }, status);
}

/** An item's output, or its error when it failed. */
export function outputOf(item) {
  if (item.status === "failed" && item.error) {
    return h("span", { class: "error-text" }, `${item.error.code ?? "error"}: ${item.error.message ?? ""}`);
  }
  return item.output ?? h("span", { class: "muted" }, item.status === "done" ? "(empty)" : "—");
}

/**
 * Whether an item passed: ended `done` with no evaluator result failed or erred; null
 * while it has not ended. The rule of the comparison (evals/compare.py `passes`).
 */
export function passes(item) {
  if (item.status !== "done" && item.status !== "failed") return null;
  return item.status === "done" && (item.scores ?? []).every((r) => !r.error && r.passed !== false);
}

/** "2 / 3 passed (66.7%)" over the ended items, or "—". */
function passedText(items) {
  const verdicts = items.map(passes).filter((v) => v !== null);
  if (!verdicts.length) return "—";
  const passed = verdicts.filter(Boolean).length;
  return `${passed} / ${verdicts.length} (${fmt.pct(passed / verdicts.length)})`;
}

export class ExperimentView {
  constructor(shell) {
    this.shell = shell;
    this.root = h("div", { class: "evals-inner experiment" });
    this.id = null;
    this.experiment = null;
    /** item id -> {item, progress} */
    this.items = new Map();
    this.unlisten = null;
  }

  hide() {
    this.unlisten?.();
    this.unlisten = null;
    clearTimeout(this.pending);
    this.root.replaceChildren();
    this.id = null;
    this.table = null;
  }

  async show(id) {
    this.hide();
    this.id = id;
    this.experiment = null;
    this.items = new Map();
    this.shell.setTitle("Experiment");
    this.follow();
    await this.load();
  }

  /** The account stream (the shell's one connection): this run's events; a reconnect
   * refetches (events may have been missed). */
  follow() {
    this.unlisten?.();
    this.unlisten = this.shell.account?.listen("experiment.updated", (data) => {
      if (data.id === this.id) this.receive(data);
    }, () => this.load()) ?? null;
  }

  async load() {
    const id = this.id;
    let found;
    try {
      found = await api.get(`/api/experiments/${enc(id)}`);
    } catch (error) {
      if (id !== this.id) return;
      if (error instanceof ApiError && error.status === 404) {
        this.shell.setTitle("Experiment not found");
        this.root.replaceChildren(h("p", { class: "muted" }, "This experiment does not exist, or is not yours."),
          h("a", { href: "/datasets", "data-link": true }, "All datasets"));
      } else this.shell.toast(`Couldn't load: ${error.message}`);
      return;
    }
    if (id !== this.id) return;
    const { items, ...experiment } = found;
    if (this.dataset?.id !== experiment.dataset_id) {
      this.dataset = await api.get(`/api/datasets/${enc(experiment.dataset_id)}`).catch(() => null);
    }
    if (id !== this.id) return;
    for (const item of items) this.keep(item, experiment.progress);
    if (this.experiment === null || experiment.progress >= this.experiment.progress) this.experiment = experiment;
    if (!this.table) this.frame();
    this.draw();
  }

  /** An `experiment.updated` event: newer counters, and the item it names. */
  receive(data) {
    if (this.experiment === null) return; // the fetch under way will bring it
    if (data.item) this.keep(data.item, data.progress);
    if (data.progress > this.experiment.progress) {
      const { item, ...figures } = data;
      this.experiment = { ...this.experiment, ...figures };
    }
    this.draw();
  }

  /** Remember an item unless what we have is newer. */
  keep(item, progress) {
    const known = this.items.get(item.id);
    if (known && known.progress > progress) return;
    // an event's item may come without the dataset item's input: keep what the fetch gave
    this.items.set(item.id, { item: { input: known?.item.input, expected: known?.item.expected, ...item }, progress });
  }

  /** The page's parts that stay while it updates. */
  frame() {
    const e = this.experiment;
    this.progressBar = h("progress", { id: "experiment-bar", max: "1", value: "0" });
    this.counts = h("span", { id: "experiment-progress", class: "experiment-progress" });
    this.status = h("span", { id: "experiment-status" });
    this.figures = h("div", { class: "figures" });
    this.actions = h("div", { class: "exports" });
    this.table = h("tbody", {});
    this.shell.setTitle(e.name);
    this.root.replaceChildren(
      h("div", { class: "observe-head" },
        h("a", { href: `/datasets/${enc(e.dataset_id)}`, "data-link": true, class: "back-link" }, `← ${this.dataset?.name ?? "Dataset"}`),
        this.actions),
      h("div", { class: "experiment-top" }, this.status, this.progressBar, this.counts),
      this.figures,
      h("div", { class: "table-wrap" }, h("table", { class: "data experiment-items" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "Input"), h("th", {}, "Expected"), h("th", {}, "Output"),
          h("th", {}, "Scores"), h("th", {}, "Status"), h("th", { class: "num" }, "Cost"), h("th", { class: "num" }, "Duration"), h("th", {}, "Trace"))),
        this.table)));
  }

  draw() {
    const e = this.experiment;
    if (!e || !this.table) return;
    this.root.dataset.status = e.status;
    this.root.dataset.progress = String(e.progress);
    this.status.replaceChildren(statusChip(e.status));
    this.progressBar.max = Math.max(1, e.total);
    this.progressBar.value = e.done;
    this.counts.textContent = `${e.done} / ${e.total} done${e.failed ? ` · ${e.failed} failed` : ""}`;
    const baseline = this.dataset?.baseline_id === e.id;
    const rows = [...this.items.values()].map((k) => k.item).sort((a, b) => a.position - b.position);
    this.figures.replaceChildren(...present(
      figure("Target", targetText(e.target, this.shell.agents.agents)),
      figure("Passed", passedText(rows)),
      figure("Evaluators", String(e.evaluators?.length ?? 0)),
      figure("Concurrency", String(e.concurrency)),
      figure("Cost", fmt.cost(e.cost)),
      figure("Started", fmt.when(e.started_at)),
      figure("Ended", e.ended_at ? fmt.when(e.ended_at) : "—"),
      baseline ? figure("Baseline", "yes") : null));
    const compareWith = this.dataset?.baseline_id && !baseline ? this.dataset.baseline_id : null;
    this.actions.replaceChildren(...present(
      compareWith ? h("a", { class: "button small", href: `/compare?ids=${enc(compareWith)},${enc(e.id)}`, "data-link": true }, "Compare with baseline") : null,
      !ACTIVE.has(e.status) && !baseline ? h("button", { type: "button", class: "button small", onclick: () => this.markBaseline() }, "Mark as baseline") : null,
      ACTIVE.has(e.status) ? h("button", { type: "button", class: "button small danger", id: "experiment-stop", onclick: () => this.stop() }, "Stop") : null,
      !ACTIVE.has(e.status) ? h("button", { type: "button", class: "button small danger", onclick: () => this.remove() }, "Delete") : null));
    this.table.replaceChildren(...rows.map((item) => h("tr", { "data-item": item.item_id, "data-status": item.status, class: `item-${item.status}` },
      h("td", { class: "num" }, String(item.position + 1)),
      h("td", { class: "cell-text" }, inputText(item.input)),
      h("td", { class: "cell-text" }, item.expected ?? h("span", { class: "muted" }, "—")),
      h("td", { class: "cell-text item-output" }, outputOf(item)),
      h("td", {}, scoreMarks(item.scores)),
      h("td", {}, statusChip(item.status), item.attempt > 1 ? h("span", { class: "muted small" }, ` try ${item.attempt}`) : null),
      h("td", { class: "num" }, fmt.cost(item.cost)),
      h("td", { class: "num" }, fmt.ms(item.duration_ms)),
      h("td", {}, item.trace_id ? h("a", { href: `/traces/${enc(item.trace_id)}`, "data-link": true, class: "trace-open" }, "Trace") : "—"))));
  }

  async stop() {
    try {
      const stopped = await api.post(`/api/experiments/${enc(this.id)}/stop`);
      this.receive({ ...stopped, item: undefined });
    } catch (error) {
      this.shell.toast(`Not stopped: ${error.message}`);
    }
  }

  async markBaseline() {
    try {
      this.dataset = await api.patch(`/api/datasets/${enc(this.experiment.dataset_id)}`, { baseline_id: this.id });
      this.shell.toast("Marked as the dataset's baseline");
      this.draw();
    } catch (error) {
      this.shell.toast(`Not marked: ${error.message}`);
    }
  }

  async remove() {
    if (!window.confirm(`Delete the run ${this.experiment.name}?`)) return;
    try {
      await api.delete(`/api/experiments/${enc(this.id)}`);
      this.shell.navigate(`/datasets/${enc(this.experiment.dataset_id)}`);
    } catch (error) {
      this.shell.toast(`Not deleted: ${error.message}`);
    }
  }
}

function figure(label, value) {
  return h("div", { class: "figure" }, h("span", { class: "muted small" }, label), h("strong", {}, value));
}
