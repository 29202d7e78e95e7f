/**
 * The dashboard's "Delivery" tab: the streaming layer's figures of this
 * process (`/api/delivery`): live subscribers by transport, events appended
 * and delivered per second, replays, resets by reason, subscribers' lag,
 * slow subscribers ended, reconnects; and the busiest chats. Polled every
 * two seconds while shown (rates are differences between two polls).
 */
import { api } from "./api.js";
import { fmt, h } from "./figures.js";

const EVERY = 2000;

export class DeliveryPanel {
  constructor(shell) {
    this.shell = shell;
    this.timer = 0;
    this.last = null;
    this.root = h("div", { class: "delivery", hidden: true });
  }

  async show() {
    clearInterval(this.timer);
    await this.poll();
    this.timer = setInterval(() => this.poll(), EVERY);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = 0;
    this.last = null;
  }

  async poll() {
    let now;
    try {
      now = await api.get("/api/delivery");
    } catch (error) {
      this.root.replaceChildren(h("p", { class: "muted", text: `Delivery figures are not available: ${error.message}` }));
      this.hide();
      return;
    }
    const before = this.last;
    this.last = { at: performance.now(), figures: now };
    this.draw(now, before);
  }

  draw(now, before) {
    const p = now.process;
    const seconds = before ? (this.last.at - before.at) / 1000 : 0;
    const rate = (name) => (before && seconds > 0 ? ((p[name] - before.figures.process[name]) / seconds).toFixed(1) : "—");
    const card = (name, value, hint) => h("div", { class: "card", "data-card": name },
      h("div", { class: "card-label", text: name }), h("div", { class: "card-value", text: String(value) }),
      h("div", { class: "card-foot" }, hint ? h("span", { class: "muted small", text: hint }) : null));
    const subscribers = Object.entries(p.subscribers).map(([k, v]) => `${v} ${k}`).join(" · ") || "none";
    const resets = Object.entries(p.resets).map(([k, v]) => `${k} ${v}`).join(" · ") || "none";
    const rows = now.chats.map((c) => h("tr", {},
      h("td", {}, h("a", { href: `/chats/${encodeURIComponent(c.chat_id)}`, "data-link": true, text: c.chat_id })),
      h("td", { class: "num", text: String(c.subscribers) }),
      h("td", { class: "num", text: fmt.count(c.appended) }),
      h("td", { class: "num", text: fmt.count(c.delivered) }),
      h("td", { class: "num", text: fmt.count(c.replays) }),
      h("td", { class: "num", text: fmt.count(c.resets) })));
    this.root.replaceChildren(
      h("p", { class: "muted small", text: `This process (pid ${now.pid}), since ${fmt.when(now.since)}. Rates over the last ${EVERY / 1000} s.` }),
      h("div", { class: "cards" },
        card("Live subscribers", Object.values(p.subscribers).reduce((a, b) => a + b, 0), subscribers),
        card("Appended / s", rate("appended"), `${fmt.count(p.appended)} in all`),
        card("Delivered / s", rate("delivered"), `${fmt.count(p.delivered)} in all`),
        card("Replays", fmt.count(p.replays), `${fmt.count(p.replayed)} events carried`),
        card("Resets", Object.values(p.resets).reduce((a, b) => a + b, 0), resets),
        card("Lag p50 / p99", `${p.lag_events.p50 ?? "—"} / ${p.lag_events.p99 ?? "—"} ev`,
          `${fmt.ms(p.lag_ms.p50)} / ${fmt.ms(p.lag_ms.p99)}`),
        card("Slow subscribers ended", fmt.count(p.slow_ended)),
        card("Reconnects", fmt.count(p.reconnects))),
      h("section", { class: "top" }, h("h3", { text: "Busiest chats" }),
        h("table", { class: "data" },
          h("thead", {}, h("tr", {}, ["Chat", "Subscribers", "Appended", "Delivered", "Replays", "Resets"].map((c, i) =>
            h("th", { class: i ? "num" : "", text: c })))),
          h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "6", class: "muted", text: "No chat streamed yet." }))))));
  }
}
