/* omni agent console: the supervisor view (#supervisor), for agents in the "supervisors" group.
 *
 * Live queues (GET /queues/{queue}) and the customer-experience KPIs of a period
 * (GET /kpis/daily: every day of the range and the range as a whole) drawn as hand-made
 * SVG: no chart library, no CDN, nothing to fetch but the agent API. Refreshed by polling
 * while the page is shown. The definitions beside each chart are docs/kpis.md's.
 */
(function () {
  "use strict";

  const C = window.OmniConsole;
  if (!C) return;
  const { api, h, fill, channel, flash, CHANNELS } = C;
  const config = window.OMNI_CONSOLE || {};
  const REFRESH_MS = config.supervisorPollMs || 5000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  const view = { days: 7, channel: "", intent: "", timer: null, busy: false, shown: false };

  // ------------------------------------------------------------------ formatting
  const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 1000) / 10} %`);
  const score = (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(2)} / 7`);
  const num = (v) => (v === null || v === undefined ? "–" : String(Math.round(v * 10) / 10));

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
    if (seconds < 48 * 3600) return `${Math.round(seconds / 360) / 10} h`;
    return `${Math.round(seconds / 8640) / 10} d`;
  }

  function utcDay(offsetDays) {
    const d = new Date(Date.now() + offsetDays * 86400000);
    return d.toISOString().slice(0, 10);
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // ------------------------------------------------------------------ charts
  const W = 320;
  /** The KPI function's hand-over reasons (shared/domain/kpis.py HANDOVER_REASONS), labelled. */
  const HANDOVER_REASONS = [
    ["asked_for_person", "asked for a person"],
    ["intent", "intent needs a person"],
    ["no_bot_answer", "no bot answer"],
    ["not_understood", "not understood"],
    ["escalation_rule", "escalation rule (assistant)"],
    ["sensitive_topic", "sensitive topic (assistant)"],
    ["unhelpful_answers", "answers did not help (assistant)"],
    ["low_confidence", "no confident answer (assistant)"],
    ["not_answerable", "not in the knowledge base (assistant)"],
    ["assistant_error", "assistant error"],
    ["other", "other"],
  ];

  /** A daily trend line: one point per day with a value (a gap where there is none). */
  function lineChart(days, key, format, max) {
    const H = 130, left = 44, right = 12, top = 10, bottom = 22;
    const values = days.map((d) => d.kpis[key]);
    const known = values.filter((v) => v !== null && v !== undefined);
    const top_ = max !== undefined ? max : Math.max(1, ...known) * 1.15;
    const x = (i) => (days.length === 1 ? (left + W - right) / 2 : left + (i * (W - left - right)) / (days.length - 1));
    const y = (v) => top + (H - top - bottom) * (1 - v / top_);
    const parts = [
      svg("line", { x1: left, y1: y(0), x2: W - right, y2: y(0), class: "axis" }),
      svg("line", { x1: left, y1: y(top_), x2: W - right, y2: y(top_), class: "grid" }),
      svg("text", { x: left - 4, y: y(0) + 4, class: "tick", "text-anchor": "end" }, format(0)),
      svg("text", { x: left - 4, y: y(top_) + 4, class: "tick", "text-anchor": "end" }, format(top_)),
      svg("text", { x: left, y: H - 4, class: "tick" }, days[0].day.slice(5)),
      days.length > 1 ? svg("text", { x: W - right, y: H - 4, class: "tick", "text-anchor": "end" }, days[days.length - 1].day.slice(5)) : null,
    ];
    let path = "";
    let pen = false;
    values.forEach((v, i) => {
      if (v === null || v === undefined) return (pen = false);
      path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
    });
    if (path) parts.push(svg("path", { d: path.trim(), class: "trend" }));
    values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      parts.push(svg("circle", { cx: x(i), cy: y(v), r: 3.5, class: "point", "data-day": days[i].day, "data-value": v },
        svg("title", {}, `${days[i].day}: ${format(v)}`)));
    });
    if (!known.length) parts.push(svg("text", { x: (left + W) / 2, y: H / 2, class: "none", "text-anchor": "middle" }, "no data in this period"));
    return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img" }, parts);
  }

  /** Horizontal bars, the number beside each. */
  function barChart(entries, format, left = 92) {
    const row = 24, right = 52;
    const H = Math.max(1, entries.length) * row + 4;
    const max = Math.max(1, ...entries.map(([, v]) => v || 0));
    const parts = entries.map(([label, value, css], i) => {
      const width = ((W - left - right) * (value || 0)) / max;
      const yy = i * row + 4;
      return svg("g", { class: "bar-row" },
        svg("text", { x: left - 6, y: yy + 14, class: "bar-label", "text-anchor": "end" }, label),
        svg("rect", { x: left, y: yy, width: Math.max(width, value ? 2 : 0), height: row - 8, rx: 3,
          class: "bar " + (css || ""), "data-label": label, "data-value": value },
          svg("title", {}, `${label}: ${format(value)}`)),
        svg("text", { x: left + width + 6, y: yy + 14, class: "bar-value" }, format(value)));
    });
    if (!entries.length) parts.push(svg("text", { x: W / 2, y: 16, class: "none", "text-anchor": "middle" }, "no data in this period"));
    return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img" }, parts);
  }

  function chart(id, title, figure, value, definition, picture) {
    return h("section", { class: "chart", "data-chart": id },
      h("div", { class: "chart-head" },
        h("h3", {}, title),
        h("span", { class: "figure", "data-value": value === null || value === undefined ? "" : value }, figure)),
      picture,
      h("p", { class: "definition" }, definition));
  }

  function renderCharts(series) {
    const k = series.kpis;
    const c = series.counters;
    const started = c.started || 0;
    const per100 = (n) => (started ? (n * 100) / started : null);
    const human = (c.resolved || 0) - (c.automated || 0);
    fill($("charts"),
      chart("fcr", "First-contact resolution", pct(k.first_contact_resolution_rate), k.first_contact_resolution_rate,
        "Resolutions the customer did not come back to (no reopen, no new conversation on the same intent within 7 days) ÷ conversations resolved; booked on the resolution day.",
        lineChart(series.days, "first_contact_resolution_rate", pct, 1)),
      chart("resolution-time", "Median resolution time", duration(k.resolution_time_p50_s), k.resolution_time_p50_s,
        "Median time from the conversation's first message to its first resolution, of the conversations resolved that day (exact to one histogram bucket).",
        lineChart(series.days, "resolution_time_p50_s", duration)),
      chart("ces", "Customer effort score", score(k.ces_average), k.ces_average,
        `Average answer to "How easy was it to get your issue solved?" (1 very difficult – 7 very easy); ${k.ces_answers || 0} answers.`,
        lineChart(series.days, "ces_average", (v) => Number(v).toFixed(1), 7)),
      chart("channels", "Conversations by channel", String(k.conversations_started), k.conversations_started,
        "Conversations started, by the channel of their first message; counted once routing classified them.",
        barChart(Object.entries(series.started_by_channel).map(([ch, n]) => [CHANNELS[ch] || ch, n, "channel-" + ch]), num)),
      chart("handovers", "Hand-overs by reason", String(k.handed_over), k.handed_over,
        "Conversations handed to a person (acknowledged or assigned), by why routing handed them over: the customer asked for a person, the intent's rule sends it to a human queue, the bot's look-up had no answer, no intent recognised.",
        barChart(HANDOVER_REASONS.filter(([key]) => series.handed_over_by_reason[key])
          .map(([key, label]) => [label, series.handed_over_by_reason[key], "reason-" + key]), num, 132)),
      chart("friction", "Channel switches and repeats per 100 conversations",
        `${num(per100(c.switches || 0))} · ${num(per100(c.repeat || 0))}`, per100(c.switches || 0),
        "Switch: a customer message on another channel than their previous one in the conversation. Repeat: a conversation whose customer had another on the same intent in the 7 days before. Per 100 conversations started.",
        barChart([["switches", per100(c.switches || 0)], ["repeats", per100(c.repeat || 0)]], num)),
      chart("resolutions", "Bot vs human resolutions", pct(k.automated_resolution_rate), k.automated_resolution_rate,
        "First resolutions by the bot (a conversation never handed to a human queue) and by agents; the figure is the bot's share.",
        barChart([["bot", c.automated || 0, "bot"], ["human", human, "human"]], num))
    );
  }

  function fillFilter(select, values, current, label) {
    const wanted = [...new Set([...values, current].filter(Boolean))].sort();
    if (select.dataset.options === wanted.join(",")) return;
    select.dataset.options = wanted.join(",");
    fill(select, h("option", { value: "" }, label),
      wanted.map((v) => h("option", { value: v, selected: v === current }, select.id === "kpi-channel" ? CHANNELS[v] || v : v)));
    select.value = current;
  }

  // ------------------------------------------------------------------ live queues
  function queueNames() {
    return [...new Set([...(config.queues || [])])].sort();
  }

  function renderLive(queues) {
    const now = Date.now();
    const stalled = [];
    const rows = queues.map((q) => {
      const waits = q.waiting.filter((c) => c.waiting_since).map((c) => [c, (now - new Date(c.waiting_since)) / 1000]);
      const oldest = waits.reduce((m, [, s]) => Math.max(m, s), 0);
      const sla = q.sla_minutes * 60;
      // Waits longer than the SLA, for an agent or for an assigned agent's reply (the API's list).
      const summaries = new Map(q.waiting.map((c) => [c.conversation_id, c]));
      for (const s of q.stalled || []) stalled.push([q, s, summaries.get(s.conversation_id)]);
      const share = Math.min(oldest / (sla || 1), 2);
      const meter = svg("svg", { viewBox: "0 0 100 10", class: "meter", role: "img" },
        svg("rect", { x: 0, y: 2, width: 50, height: 6, class: "meter-sla" }),
        svg("rect", { x: 0, y: 2, width: share * 50, height: 6, class: oldest > sla ? "meter-over" : "meter-ok" },
          svg("title", {}, `oldest ${duration(oldest)} of ${q.sla_minutes} min SLA`)),
        svg("line", { x1: 50, y1: 0, x2: 50, y2: 10, class: "meter-mark" }));
      return h("tr", { "data-queue": q.queue, class: oldest > sla ? "over" : "" },
        h("td", {}, q.queue),
        h("td", { class: "waiting" }, q.waiting.length),
        h("td", {}, meter, h("span", { class: "small" }, ` ${waits.length ? duration(oldest) : "–"} / ${q.sla_minutes} min`)),
        h("td", { class: "available" }, q.agents_available),
        h("td", { class: "busy" }, Math.max(0, q.agents_available - q.agents_free)));
    });
    fill($("live-queues").tBodies[0], rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "no queues")));
    $("stalled-count").textContent = stalled.length ? String(stalled.length) : "";
    stalled.sort((a, b) => b[1].waited_seconds - a[1].waited_seconds);
    fill($("stalled"), stalled.length
      ? stalled.map(([q, s, c]) => h("li", { "data-conversation-id": s.conversation_id, "data-wait-kind": s.wait_kind },
          h("a", { href: "#conversation/" + encodeURIComponent(s.conversation_id) }, (c && c.routing && c.routing.intent) || "conversation"),
          " ", ((c && c.channels) || []).map(channel),
          h("span", { class: "muted small" },
            ` ${q.queue} · ${s.wait_kind === "reply" ? `waiting for ${s.assigned_agent || "the agent"}'s reply` : "waiting for an agent"}`
            + ` ${duration(s.waited_seconds)} (SLA ${Math.round(s.sla_seconds / 60)} min)`)))
      : h("li", { class: "muted" }, "None: every customer is within the SLA."));
    $("live-updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  // ------------------------------------------------------------------ refresh
  async function refresh() {
    if (!view.shown || view.busy) return;
    view.busy = true;
    const from = utcDay(1 - view.days);
    const to = utcDay(0);
    const query = new URLSearchParams({ from, to });
    if (view.channel) query.set("channel", view.channel);
    if (view.intent) query.set("intent", view.intent);
    try {
      const [series, ...queues] = await Promise.all([
        api("GET", "/kpis/daily?" + query),
        ...queueNames().map((q) => api("GET", "/queues/" + encodeURIComponent(q)).catch(() => null)),
      ]);
      if (!view.shown) return;
      document.body.dataset.supervisor = "ready";
      $("kpi-range").textContent = from === to ? from : `${from} – ${to}`;
      $("kpi-range").dataset.from = from;
      $("kpi-range").dataset.to = to;
      fillFilter($("kpi-channel"), series.channels, view.channel, "all channels");
      fillFilter($("kpi-intent"), series.intents, view.intent, "all intents");
      renderCharts(series);
      renderLive(queues.filter(Boolean));
    } catch (error) {
      if (error.status === 403) {
        document.body.dataset.supervisor = "refused";
        hide();
        window.location.hash = "";
        flash("The supervisor view is for supervisors.");
      } else if (error.status !== 401) flash("Refresh failed: " + error.message);
    } finally {
      view.busy = false;
    }
  }

  function markPeriod() {
    for (const b of document.querySelectorAll(".period button")) {
      b.classList.toggle("active", Number(b.dataset.days) === view.days);
      b.setAttribute("aria-pressed", String(Number(b.dataset.days) === view.days));
    }
  }

  for (const button of document.querySelectorAll(".period button")) {
    button.addEventListener("click", () => {
      view.days = Number(button.dataset.days);
      markPeriod();
      refresh();
    });
  }
  $("kpi-channel").addEventListener("change", (e) => ((view.channel = e.target.value), refresh()));
  $("kpi-intent").addEventListener("change", (e) => ((view.intent = e.target.value), refresh()));

  function show() {
    if (view.shown) return;
    view.shown = true;
    markPeriod();
    refresh();
    view.timer = setInterval(refresh, REFRESH_MS);
  }

  function hide() {
    view.shown = false;
    clearInterval(view.timer);
    view.timer = null;
  }

  window.OmniSupervisor = { show, hide, refresh };
})();
