/**
 * The dashboard (`/dashboard`): a period (24 h, 7 d, 30 d or custom), cards
 * with the change against the period before, uPlot charts of cost and tokens
 * by model, latency and time-to-first-chunk percentiles and the error rate
 * over time, and the top models, agents and users. Four `/api/metrics` calls.
 * The "Delivery" tab shows the streaming layer's figures (`/api/delivery`).
 */
import uPlot from "uplot";
import { api } from "./api.js";
import { DeliveryPanel } from "./delivery.js";
import { fmt, h } from "./figures.js";

const PALETTE = ["#10a37f", "#6e56cf", "#e5484d", "#f76b15", "#0090ff", "#ad7f58", "#d6409f", "#46a758"];
const PERIODS = [["24h", "24 h"], ["7d", "7 d"], ["30d", "30 d"], ["custom", "Custom"]];

/** `+12%` / `−3%` / `new` of `now` against `before`; `better` says which way is good. */
function change(now, before, better = "up") {
  if (now === null || now === undefined) return h("span", { class: "delta muted", text: "" });
  if (!before) return h("span", { class: "delta muted", text: before === 0 && now ? "new" : "" });
  const ratio = (now - before) / before;
  const good = better === "up" ? ratio >= 0 : ratio <= 0;
  const text = `${ratio >= 0 ? "+" : "−"}${Math.abs(ratio * 100).toFixed(ratio && Math.abs(ratio) < 0.1 ? 1 : 0)}%`;
  return h("span", { class: `delta ${Math.abs(ratio) < 0.005 ? "muted" : good ? "good" : "bad"}`, text, title: "against the period before" });
}

function isoLocal(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export class DashboardView {
  constructor(shell) {
    this.shell = shell;
    this.period = "24h";
    this.tab = "usage";
    this.charts = [];
    this.root = h("div", { class: "observe-inner dashboard" });
    this.periods = h("div", { class: "segmented", role: "group", "aria-label": "Period" },
      PERIODS.map(([value, label]) => h("button", {
        type: "button", class: "segment", "data-period": value, text: label,
        onclick: () => this.choose(value),
      })));
    const now = new Date();
    this.from = h("input", { type: "datetime-local", "aria-label": "From", value: isoLocal(new Date(now - 3 * 86400e3)) });
    this.to = h("input", { type: "datetime-local", "aria-label": "To", value: isoLocal(now) });
    this.custom = h("div", { class: "custom-range", hidden: true }, this.from, this.to,
      h("button", { type: "button", class: "button small", text: "Apply", onclick: () => this.load() }));
    this.tabs = h("div", { class: "segmented tabs", role: "tablist" },
      [["usage", "Models"], ["delivery", "Delivery"]].map(([value, label]) => h("button", {
        type: "button", class: "segment", role: "tab", "data-tab": value, text: label,
        onclick: () => this.switchTab(value),
      })));
    this.cards = h("div", { class: "cards" });
    this.grid = h("div", { class: "chart-grid" });
    this.tops = h("div", { class: "tops" });
    this.usage = h("div", { class: "usage" }, this.cards, this.grid, this.tops);
    this.delivery = new DeliveryPanel(shell);
    this.root.append(
      h("div", { class: "observe-head" }, this.tabs, h("div", { class: "period" }, this.periods, this.custom)),
      this.usage, this.delivery.root);
    this.resize = () => {
      clearTimeout(this.resizing);
      this.resizing = setTimeout(() => this.draw(), 150);
    };
  }

  async show() {
    this.shell.setTitle("Dashboard");
    window.addEventListener("resize", this.resize);
    this.mark();
    await (this.tab === "usage" ? this.load() : this.delivery.show());
  }

  hide() {
    window.removeEventListener("resize", this.resize);
    this.delivery.hide();
    this.destroy();
  }

  mark() {
    for (const b of this.periods.children) b.setAttribute("aria-pressed", String(b.dataset.period === this.period));
    for (const b of this.tabs.children) b.setAttribute("aria-selected", String(b.dataset.tab === this.tab));
    this.custom.hidden = this.period !== "custom" || this.tab !== "usage";
    this.periods.hidden = this.tab !== "usage";
    this.usage.hidden = this.tab !== "usage";
    this.delivery.root.hidden = this.tab !== "delivery";
  }

  choose(period) {
    this.period = period;
    this.mark();
    if (period !== "custom") this.load();
  }

  async switchTab(tab) {
    this.tab = tab;
    this.mark();
    if (tab === "delivery") await this.delivery.show();
    else {
      this.delivery.hide();
      await this.load();
    }
  }

  range() {
    if (this.period !== "custom") return `period=${this.period}`;
    const since = new Date(this.from.value).toISOString();
    const until = new Date(this.to.value).toISOString();
    return `since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`;
  }

  async load() {
    const range = this.range();
    this.root.setAttribute("aria-busy", "true");
    try {
      const [models, all, agents, users] = await Promise.all([
        api.get(`/api/metrics?${range}&group_by=model`),
        api.get(`/api/metrics?${range}&group_by=all`),
        api.get(`/api/metrics?${range}&group_by=agent&detail=totals`),
        api.get(`/api/metrics?${range}&group_by=user&detail=totals`),
      ]);
      this.data = { models, all, agents, users };
    } catch (error) {
      this.shell.toast(`Couldn't load the dashboard: ${error.message}`);
      return;
    } finally {
      this.root.removeAttribute("aria-busy");
    }
    this.drawCards();
    this.draw();
    this.drawTops();
  }

  drawCards() {
    const { totals, previous } = this.data.all;
    const card = (name, value, delta, hint) =>
      h("div", { class: "card", "data-card": name }, h("div", { class: "card-label", text: name }),
        h("div", { class: "card-value", text: value }), h("div", { class: "card-foot" }, delta, hint ? h("span", { class: "muted small", text: hint }) : null));
    this.cards.replaceChildren(
      card("Model calls", fmt.count(totals.count), change(totals.count, previous.count)),
      card("Cost", fmt.cost(totals.cost), change(totals.cost, previous.cost, "down")),
      card("Tokens", fmt.count(totals.tokens), change(totals.tokens, previous.tokens),
        `${fmt.count(totals.input_tokens)} in · ${fmt.count(totals.output_tokens)} out`),
      card("Error rate", fmt.pct(totals.error_rate), change(totals.error_rate, previous.error_rate, "down"),
        `${fmt.count(totals.errors)} failed`),
      card("Latency p95", fmt.ms(totals.duration_ms.p95), change(totals.duration_ms.p95, previous.duration_ms.p95, "down"),
        `p50 ${fmt.ms(totals.duration_ms.p50)}`),
      card("First chunk p95", fmt.ms(totals.ttft_ms.p95), change(totals.ttft_ms.p95, previous.ttft_ms.p95, "down"),
        `p50 ${fmt.ms(totals.ttft_ms.p50)}`),
    );
  }

  destroy() {
    for (const chart of this.charts) chart.destroy();
    this.charts = [];
  }

  /** The charts, sized to the grid's width (again on resize). */
  draw() {
    if (!this.data || this.usage.hidden) return;
    this.destroy();
    const { models, all } = this.data;
    const step = models.bucket_seconds;
    const times = [];
    for (let t = Date.parse(models.since) / 1000; t < Date.parse(models.until) / 1000; t += step) times.push(t);
    const byKey = (response, figure) => {
      const keys = response.groups.map((g) => g.key);
      const index = new Map(times.map((t, i) => [t, i]));
      const columns = keys.map(() => times.map(() => 0));
      for (const point of response.series) {
        const i = index.get(Date.parse(point.bucket) / 1000);
        if (i !== undefined) columns[keys.indexOf(point.key)][i] = figure(point);
      }
      return { labels: response.groups.map((g) => g.label), columns };
    };
    const overall = (figure) => {
      const index = new Map(all.series.map((p) => [Date.parse(p.bucket) / 1000, p]));
      return times.map((t) => (index.has(t) ? figure(index.get(t)) : null));
    };
    const cost = byKey(models, (p) => p.cost);
    const tokens = byKey(models, (p) => p.tokens);
    const specs = [
      ["Cost by model", "cost", cost.labels, cost.columns, (v) => fmt.cost(v)],
      ["Tokens by model", "tokens", tokens.labels, tokens.columns, (v) => fmt.count(v)],
      ["Latency", "latency", ["p50", "p95", "p99"], ["p50", "p95", "p99"].map((q) => overall((p) => p.duration_ms[q])), (v) => fmt.ms(v)],
      ["Time to first chunk", "ttft", ["p50", "p95", "p99"], ["p50", "p95", "p99"].map((q) => overall((p) => p.ttft_ms[q])), (v) => fmt.ms(v)],
      ["Error rate", "errors", ["errors"], [overall((p) => (p.count ? p.error_rate : null))], (v) => fmt.pct(v)],
    ];
    this.grid.replaceChildren();
    for (const [title, name, labels, columns, format] of specs) {
      const box = h("figure", { class: "chart", "data-chart": name }, h("figcaption", { text: title }));
      this.grid.append(box);
      const width = Math.max(260, box.clientWidth - 24);
      const chart = new uPlot({
        width,
        height: 200,
        legend: { show: true, live: false },
        cursor: { points: { size: 6 } },
        scales: { x: { time: true } },
        axes: [
          { stroke: "#8e8e8e", grid: { stroke: "#eee" }, ticks: { stroke: "#eee" } },
          { stroke: "#8e8e8e", grid: { stroke: "#eee" }, ticks: { stroke: "#eee" }, size: 64, values: (u, values) => values.map(format) },
        ],
        series: [{}, ...labels.map((label, i) => ({
          label, stroke: PALETTE[i % PALETTE.length], width: 1.6, spanGaps: true,
          value: (u, v) => (v === null || v === undefined ? "—" : format(v)),
        }))],
      }, [times, ...columns], box);
      this.charts.push(chart);
    }
  }

  drawTops() {
    const table = (title, name, response) => {
      const rows = response.groups.slice(0, 8).map((g) => h("tr", {},
        h("td", { class: "name", title: g.key }, g.label),
        h("td", { class: "num", text: fmt.count(g.count) }),
        h("td", { class: "num", text: fmt.cost(g.cost) }),
        h("td", { class: "num", text: fmt.count(g.tokens) }),
        h("td", { class: "num", text: fmt.pct(g.error_rate) })));
      return h("section", { class: "top", "data-top": name }, h("h3", { text: title }),
        h("table", { class: "data" },
          h("thead", {}, h("tr", {}, ["", "Calls", "Cost", "Tokens", "Errors"].map((c, i) => h("th", { class: i ? "num" : "", text: c })))),
          h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "5", class: "muted", text: "Nothing in this period." })))));
    };
    this.tops.replaceChildren(
      table("Top models", "models", this.data.models),
      table("Top agents", "agents", this.data.agents),
      table("Top users", "users", this.data.users));
  }
}
