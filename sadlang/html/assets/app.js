/* sadlang report page: summary, claim cards, circuit viewer (cytoscape), attention heatmaps.
   Data comes from the JSON blocks the page embeds (sadlang/html/page.py); a card's detail is
   parsed and drawn the first time the card is opened. */
(function () {
  "use strict";

  var SIDE_COLOUR = {query: "#d62728", key: "#1f77b4", value: "#2ca02c", seed: "#888888",
                     all: "#9467bd", node: "#bbbbbb"};
  var KIND_COLOUR = {head: "#fff3b0", root: "#c7e9c0", mlp: "#dadaeb", embed: "#e0e0e0",
                     bias: "#e0e0e0", offset: "#fde0dd"};
  var state = {graphs: {}, rendered: {}};
  window.sadlang = state;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "cls") { node.className = attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function readBlock(id) {
    var block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }

  function fmt(x) {
    if (x === null || x === undefined) { return "—"; }
    if (typeof x !== "number") { return String(x); }
    return Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 0.001) ? x.toExponential(3) : String(Math.round(x * 1000) / 1000);
  }

  function shown(tok) { return JSON.stringify(tok).slice(1, -1); }

  /* ---------- summary */
  function renderSummary(data) {
    var box = document.getElementById("summary");
    data.reports.forEach(function (r) {
      var rows = [["spec", r.spec], ["model", r.model + " (" + r.fingerprint + ")"], ["method", r.method]];
      if (r.seeds) { rows.push(["seeds", Object.keys(r.seeds).map(function (k) { return k + " " + r.seeds[k]; }).join(", ")]); }
      if (r.seconds !== undefined) { rows.push(["time", fmt(r.seconds) + " s"]); }
      var table = el("table", {cls: "meta"}, rows.map(function (kv) {
        return el("tr", {}, [el("th", {text: kv[0]}), el("td", {text: kv[1]})]);
      }));
      var counts = null;
      if (r.summary) {
        counts = el("div", {cls: "counts"}, ["held", "failed", "inconclusive", "error"].map(function (k) {
          return el("span", {cls: "count " + k}, [el("b", {cls: "count-" + k, text: String(r.summary[k])}),
                                                  document.createTextNode(" " + k)]);
        }));
      }
      box.appendChild(el("section", {cls: "report-summary"}, [counts, table]));
    });
  }

  /* ---------- cards */
  function renderCards(data) {
    var main = document.getElementById("cards");
    data.reports.forEach(function (r) {
      if (data.reports.length > 1) { main.appendChild(el("h2", {text: r.spec})); }
      r.claims.forEach(function (c) {
        var summary = el("summary", {}, [
          el("span", {cls: "badge " + c.status, text: c.status.toUpperCase()}),
          el("span", {cls: "name", text: c.name}),
          el("span", {cls: "kind", text: c.kind}),
          el("span", {cls: "loc", text: c.location})
        ]);
        var body = el("div", {cls: "body"}, [
          el("pre", {cls: "claim-text", text: c.claim}),
          el("table", {cls: "cm"}, [
            el("tr", {}, [el("th", {text: "claimed"}), el("td", {cls: "claimed", text: c.claimed || "—"})]),
            el("tr", {}, [el("th", {text: "measured"}), el("td", {cls: "measured", text: c.measured})])
          ]),
          el("div", {cls: "detail"})
        ]);
        var card = el("details", {cls: "card " + c.status, id: "card-" + c.card, "data-name": c.name,
                                  "data-status": c.status}, [summary, body]);
        card.addEventListener("toggle", function () { if (card.open) { renderDetail(card, c); } });
        main.appendChild(card);
        if (c.status !== "held" || data.kind === "trace") { card.open = true; }
      });
    });
  }

  function tokenLine(tokens, labels) {
    return el("span", {cls: "tokens"}, tokens.map(function (t, i) {
      var label = labels && labels[String(i)];
      return el("span", {cls: label ? "tok role" : "tok", title: "position " + i + (label ? ", role " + label : ""),
                         text: shown(t)}, label ? [el("sub", {text: label})] : []);
    }));
  }

  function renderPrompts(box, prompts) {
    if (!prompts.length) { return; }
    var rows = prompts.map(function (p) {
      var text = p.tokens && p.tokens.length ? tokenLine(p.tokens, p.labels) : el("span", {text: p.text});
      var judged = p.passed === true ? "pass" : (p.passed === false ? "fail" : "");
      return el("tr", {cls: p.passed === true ? "ok" : (p.passed === false ? "bad" : "value")}, [
        el("td", {text: String(p.index)}), el("td", {}, [text]), el("td", {text: fmt(p.value)}),
        el("td", {text: judged}), el("td", {cls: "why", text: p.detail})]);
    });
    box.appendChild(el("h4", {text: "prompts"}));
    box.appendChild(el("table", {cls: "prompts"}, [el("tr", {}, ["#", "prompt (roles marked)", "value", "", "evidence"].map(
      function (h) { return el("th", {text: h}); }))].concat(rows)));
  }

  function renderDetails(box, details) {
    var keys = Object.keys(details || {});
    if (!keys.length) { return; }
    box.appendChild(el("h4", {text: "measurements"}));
    box.appendChild(el("table", {cls: "kv"}, keys.sort().map(function (k) {
      var v = details[k];
      return el("tr", {}, [el("th", {text: k}), el("td", {text: typeof v === "object" ? JSON.stringify(v) : fmt(v)})]);
    })));
  }

  function renderDetail(card, c) {
    if (state.rendered[c.card]) { return; }
    state.rendered[c.card] = true;
    var d = readBlock("sad-card-" + c.card) || {};
    var box = card.querySelector(".detail");
    if (c.counterexample) {
      box.appendChild(el("h4", {text: "counterexample"}));
      var cx = d.counterexample_tokens && d.counterexample_tokens.length ? tokenLine(d.counterexample_tokens, {})
        : el("span", {text: c.counterexample.text});
      box.appendChild(el("div", {cls: "counterexample"}, [cx, el("div", {cls: "why", text: c.counterexample.detail})]));
    }
    if (d.graph) { renderGraph(box, d.graph, c.card); }
    if (d.head_grid) { renderHeadGrid(box, d.head_grid); }
    if (d.heatmaps && d.heatmaps.length) { renderHeatmaps(box, d.heatmaps, d.heatmap_title); }
    renderDetails(box, d.details);
    renderPrompts(box, d.prompts || []);
    if (d.note) { box.appendChild(el("p", {cls: "note", text: d.note})); }
  }

  /* ---------- a value per head: layers down, heads across; heads that hold outlined */
  function renderHeadGrid(box, g) {
    var L = g.values.length, H = L ? g.values[0].length : 0, cell = 16, pad = 34;
    var canvas = el("canvas", {cls: "head-grid", width: String(pad + H * cell + 4), height: String(pad + L * cell + 4)});
    var ctx = canvas.getContext("2d");
    ctx.font = "10px sans-serif";
    for (var h = 0; h < H; h++) { ctx.fillStyle = "#333"; ctx.textAlign = "center"; ctx.fillText(String(h), pad + h * cell + 7, pad - 6); }
    for (var l = 0; l < L; l++) {
      ctx.fillStyle = "#333"; ctx.textAlign = "right"; ctx.fillText("L" + l, pad - 4, pad + l * cell + 11);
      for (var k = 0; k < H; k++) {
        var v = g.values[l][k];
        ctx.fillStyle = v === null ? "#f4f4f4" : "rgba(8, 48, 107," + Math.max(0, Math.min(1, v)) + ")";
        ctx.fillRect(pad + k * cell, pad + l * cell, cell - 1, cell - 1);
        if (g.marked.indexOf(l + "." + k) >= 0) {
          ctx.strokeStyle = "#d62728"; ctx.lineWidth = 2;
          ctx.strokeRect(pad + k * cell + 1, pad + l * cell + 1, cell - 3, cell - 3);
        }
      }
    }
    canvas.title = g.title + "; outlined: " + (g.marked.join(", ") || "none");
    box.appendChild(el("h4", {text: g.title}));
    box.appendChild(el("figure", {}, [canvas, el("figcaption", {text: "outlined: the heads that hold (" + (g.marked.join(", ") || "none") + ")"})]));
  }

  /* ---------- heatmaps */
  function renderHeatmaps(box, maps, title) {
    box.appendChild(el("h4", {text: (title || "attention of the heads this claim names") + " (prompt " + maps[0].prompt + ")"}));
    var row = el("div", {cls: "heatmaps"});
    maps.forEach(function (m) {
      var n = m.tokens.length, cell = 14, pad = 90;
      var canvas = el("canvas", {width: String(pad + n * cell + 4), height: String(pad + n * cell + 4),
                                 "data-head": m.head});
      var ctx = canvas.getContext("2d");
      ctx.font = "10px sans-serif";
      ctx.fillStyle = "#333";
      for (var d = 0; d < n; d++) {
        ctx.textAlign = "right";
        ctx.fillText(shown(m.tokens[d]).slice(0, 12), pad - 4, pad + d * cell + 10);
        for (var s = 0; s < n; s++) {
          var w = m.weights[d][s];
          ctx.fillStyle = s > d ? "#f4f4f4" : "rgba(8, 48, 107," + Math.max(0, Math.min(1, w)) + ")";
          ctx.fillRect(pad + s * cell, pad + d * cell, cell - 1, cell - 1);
        }
        ctx.fillStyle = "#333";
      }
      for (var k = 0; k < n; k++) {
        ctx.save();
        ctx.translate(pad + k * cell + 10, pad - 4);
        ctx.rotate(-Math.PI / 3);
        ctx.textAlign = "left";
        ctx.fillText(shown(m.tokens[k]).slice(0, 12), 0, 0);
        ctx.restore();
      }
      canvas.title = "head " + m.head + ": rows are destinations, columns keys";
      row.appendChild(el("figure", {}, [canvas, el("figcaption", {text: "head " + m.head})]));
    });
    box.appendChild(row);
  }

  /* ---------- circuit viewer */
  function renderGraph(box, g, cardId) {
    var wmax = g.edges.reduce(function (m, e) { return Math.max(m, Math.abs(e.weight)); }, 0) || 1;
    var info = el("div", {cls: "edge-info", text: "click an edge for its signal; click a node for its path to the logit"});
    var count = el("span", {cls: "edge-count"});
    var weight = el("input", {type: "range", cls: "weight-filter", min: "0", max: String(wmax),
                              step: String(wmax / 200), value: "0"});
    var weightLabel = el("span", {cls: "weight-value", text: "0"});
    var controls = [el("label", {}, [document.createTextNode("min edge weight "), weight, weightLabel])];
    var freq = null, freqLabel = null;
    if (g.aggregated) {
      freq = el("input", {type: "range", cls: "freq-filter", min: "0", max: "1", step: "0.05",
                          value: String(g.min_frequency || 0)});
      freqLabel = el("span", {cls: "freq-value", text: fmt(g.min_frequency || 0)});
      controls.push(el("label", {}, [document.createTextNode("min frequency "), freq, freqLabel]));
    }
    controls.push(count);
    var holder = el("div", {cls: "graph", id: "graph-" + cardId});
    var legend = el("div", {cls: "legend"}, Object.keys(SIDE_COLOUR).map(function (s) {
      return el("span", {}, [el("i", {style: "background:" + SIDE_COLOUR[s]}), document.createTextNode(s)]);
    }));
    box.appendChild(el("h4", {text: g.title}));
    box.appendChild(el("div", {cls: "graph-controls"}, controls));
    box.appendChild(el("div", {cls: "graph-wrap"}, [holder, el("aside", {}, [legend, info])]));
    var elements = g.nodes.map(function (n) {
      return {group: "nodes", data: n, position: {x: n.x, y: n.y}};
    }).concat(g.edges.map(function (e) { return {group: "edges", data: e}; }));
    var top = g.nodes.reduce(function (m, n) { return Math.max(m, n.y); }, 0);
    g.columns.forEach(function (label, i) {
      elements.push({group: "nodes", data: {id: "__col" + i, label: label, kind: "axis"},
                     position: {x: i * 110, y: top + 60}, selectable: false, grabbable: false});
    });
    (g.rows || []).forEach(function (r, i) {
      elements.push({group: "nodes", data: {id: "__row" + i, label: r[1], kind: "axis"},
                     position: {x: -110, y: r[0]}, selectable: false, grabbable: false});
    });
    var cy = cytoscape({
      container: holder, elements: elements, layout: {name: "preset"},
      style: [
        {selector: "node", style: {"label": "data(label)", "font-size": 11, "text-valign": "center",
          "shape": "round-rectangle", "width": 54, "height": 20, "border-width": 1, "border-color": "#555",
          "background-color": function (n) { return KIND_COLOUR[n.data("kind")] || "#eee"; }}},
        {selector: "node[kind = 'axis']", style: {"background-opacity": 0, "border-width": 0, "width": 100,
          "font-size": 9, "color": "#666", "text-wrap": "ellipsis", "text-max-width": 100, "events": "no"}},
        {selector: "edge", style: {"curve-style": "bezier", "target-arrow-shape": "triangle", "arrow-scale": 0.6,
          "opacity": 0.7, "line-color": function (e) { return SIDE_COLOUR[e.data("side")] || "#000"; },
          "target-arrow-color": function (e) { return SIDE_COLOUR[e.data("side")] || "#000"; },
          "width": function (e) { return 0.8 + 5 * Math.abs(e.data("weight")) / wmax; }}},
        {selector: ".faded", style: {"opacity": 0.12}},
        {selector: ".path", style: {"opacity": 1, "border-width": 3, "border-color": "#000"}},
        {selector: "edge:selected", style: {"opacity": 1, "line-style": "dashed"}}
      ]
    });
    state.graphs[cardId] = cy;

    function apply() {
      var wmin = parseFloat(weight.value), fmin = freq ? parseFloat(freq.value) : 0;
      weightLabel.textContent = fmt(wmin);
      if (freqLabel) { freqLabel.textContent = fmt(fmin); }
      cy.batch(function () {
        cy.nodes().forEach(function (n) {
          var f = n.data("frequency");
          n.style("display", f !== undefined && f < fmin ? "none" : "element");
        });
        cy.edges().forEach(function (e) {
          var hidden = Math.abs(e.data("weight")) < wmin || e.source().style("display") === "none" ||
            e.target().style("display") === "none";
          e.style("display", hidden ? "none" : "element");
        });
      });
      var shownNodes = cy.nodes().filter(function (n) { return n.style("display") !== "none"; });
      if (shownNodes.length) { cy.fit(shownNodes, 20); }
      var visible = cy.edges().filter(function (e) { return e.style("display") !== "none"; }).length;
      count.textContent = visible + " of " + cy.edges().length + " edges shown";
      count.setAttribute("data-visible", String(visible));
    }
    weight.addEventListener("input", apply);
    if (freq) { freq.addEventListener("input", apply); }
    apply();

    function show(rows) {
      info.textContent = "";
      info.appendChild(el("table", {cls: "kv"}, rows.map(function (kv) {
        return el("tr", {}, [el("th", {text: kv[0]}), el("td", {cls: "v-" + kv[0].replace(/ /g, "-"), text: kv[1]})]);
      })));
    }
    cy.on("tap", "edge", function (evt) {
      var e = evt.target.data();
      var rows = [["edge", e.source + " → " + e.target], ["side", e.side], ["weight", fmt(e.weight)],
                  ["singular directions", JSON.stringify(e.svs)],
                  ["signal norm", e.signal_norm !== undefined ? fmt(e.signal_norm) : "not recorded"]];
      if (e.frequency !== undefined) { rows.push(["frequency", fmt(e.frequency)]); }
      show(rows);
      info.setAttribute("data-edge", e.id);
    });
    cy.on("mouseover", "node", function (evt) {
      var n = evt.target.data();
      if (n.kind === "axis") { return; }
      var rows = [["node", n.id], ["kind", n.kind], ["where", n.where || ""]];
      if (n.kind === "head") { rows.push(["head", n.layer + "." + n.head]); }
      rows.push(["attention", n.attn !== undefined ? fmt(n.attn) : "—"]);
      if (n.frequency !== undefined) { rows.push(["frequency", fmt(n.frequency)]); }
      if (n.effect !== undefined) { rows.push(["faithfulness without it", fmt(n.effect)]); }
      show(rows);
    });
    cy.on("tap", "node", function (evt) {
      var node = evt.target;
      var path = node.union(node.successors());
      cy.elements().addClass("faded").removeClass("path");
      path.removeClass("faded").addClass("path");
      holder.setAttribute("data-path", String(path.nodes().length));
    });
    cy.on("tap", function (evt) {
      if (evt.target === cy) { cy.elements().removeClass("faded path"); holder.removeAttribute("data-path"); }
    });
  }

  var data = readBlock("sad-data");
  renderSummary(data);
  renderCards(data);
  document.body.setAttribute("data-ready", "1");
})();
