/* sadlang report page: summary, claim cards, circuit viewer (cytoscape), attention heatmaps.
   Data comes from the JSON blocks the page embeds (sadlang/html/page.py); a card's detail is
   parsed and drawn the first time the card is opened. */
(function () {
  "use strict";

  var SIDE_COLOUR = {query: "#d62728", key: "#1f77b4", value: "#2ca02c", seed: "#888888",
                     all: "#9467bd", node: "#bbbbbb"};
  var KIND_COLOUR = {head: "#fff3b0", root: "#c7e9c0", mlp: "#dadaeb", embed: "#e0e0e0",
                     bias: "#e0e0e0", offset: "#fde0dd"};
  var state = {graphs: {}, rendered: {}, banks: {}};
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

  function download(name, href) {
    var a = el("a", {href: href, download: name});
    document.body.appendChild(a); a.click(); document.body.removeChild(a);
  }
  function downloadText(name, mime, text) { download(name, URL.createObjectURL(new Blob([text], {type: mime}))); }
  function csv(rows) {
    return rows.map(function (r) {
      return r.map(function (x) {
        var t = x === null || x === undefined ? "" : String(x);
        return /[",\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
      }).join(",");
    }).join("\n") + "\n";
  }

  /* ---------- summary */
  function renderSummary(data) {
    var box = document.getElementById("summary");
    data.reports.forEach(function (r) {
      var rows = [[data.kind === "trace" ? "prompt" : "spec", r.spec], ["model", r.model + " (" + r.fingerprint + ")"],
                  ["method", r.method]];
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
  function renderTools(data, main) {
    /* search, status and kind filters, and a table of contents of the claims */
    if (data.kind === "trace") { return; }
    var claims = [];
    data.reports.forEach(function (r) { r.claims.forEach(function (c) { claims.push(c); }); });
    var kinds = claims.map(function (c) { return c.kind; }).filter(function (k, i, a) { return a.indexOf(k) === i; }).sort();
    var search = el("input", {type: "search", cls: "claim-search", placeholder: "search claims",
                              "aria-label": "search claims by name, text or kind"});
    var kind = el("select", {cls: "kind-filter", "aria-label": "claim kind"},
                  [el("option", {value: "", text: "every kind"})].concat(kinds.map(function (k) {
                    return el("option", {value: k, text: k}); })));
    var statuses = ["failed", "inconclusive", "error", "held"];
    var boxes = statuses.map(function (st) {
      return el("label", {cls: "status-filter"}, [el("input", {type: "checkbox", value: st, checked: "checked"}),
                                                  document.createTextNode(" " + st)]);
    });
    var toc = el("nav", {cls: "toc", "aria-label": "claims"}, [el("ol", {}, claims.map(function (c) {
      return el("li", {"data-name": c.name}, [el("a", {href: "#card-" + c.card, cls: "toc-" + c.status,
                                                      text: c.name + " (" + c.status + ")"})]);
    }))]);
    var shownCount = el("span", {cls: "shown-count"});
    function apply() {
      var q = search.value.toLowerCase(), k = kind.value, n = 0;
      var wanted = boxes.filter(function (b) { return b.querySelector("input").checked; })
        .map(function (b) { return b.querySelector("input").value; });
      claims.forEach(function (c) {
        var hit = (!q || (c.name + " " + c.claim + " " + c.kind).toLowerCase().indexOf(q) >= 0) &&
          (!k || c.kind === k) && wanted.indexOf(c.status) >= 0;
        document.getElementById("card-" + c.card).hidden = !hit;
        toc.querySelector("li[data-name='" + c.name + "']").hidden = !hit;
        if (hit) { n++; }
      });
      shownCount.textContent = n + " of " + claims.length + " claims shown";
      shownCount.setAttribute("data-shown", String(n));
    }
    search.addEventListener("input", apply);
    kind.addEventListener("change", apply);
    boxes.forEach(function (b) { b.querySelector("input").addEventListener("change", apply); });
    main.appendChild(el("div", {cls: "claim-tools"}, [search, kind].concat(boxes).concat([shownCount])));
    main.appendChild(el("details", {cls: "toc-box"}, [el("summary", {text: "claims (" + claims.length + ")"}), toc]));
    state.applyFilters = apply;
  }

  function renderCards(data) {
    var main = document.getElementById("cards");
    renderTools(data, main);
    data.reports.forEach(function (r) {
      if (data.reports.length > 1) { main.appendChild(el("h2", {text: r.spec})); }
      var times = r.claim_seconds || {};
      r.claims.forEach(function (c) {
        var summary = el("summary", {}, [
          el("span", {cls: "badge " + c.status, text: c.status.toUpperCase()}),
          el("span", {cls: "name", text: c.name}),
          el("span", {cls: "kind", text: c.kind}),
          el("span", {cls: "loc", text: c.location}),
          times[c.name] !== undefined ? el("span", {cls: "time", text: fmt(times[c.name]) + " s"}) : null
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
        var opening = false;                    // opened by the page itself (a failed claim), not the user
        card.addEventListener("toggle", function () { if (card.open) { renderDetail(card, c, !opening); } });
        main.appendChild(card);
        if (c.status !== "held" || data.kind === "trace") { opening = data.kind !== "trace"; card.open = true; }
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
    var save = el("button", {type: "button", cls: "export-prompts", text: "CSV"});
    save.addEventListener("click", function () {
      downloadText("prompts.csv", "text/csv", csv([["index", "prompt", "value", "passed", "evidence"]].concat(
        prompts.map(function (p) { return [p.index, p.text, p.value, p.passed, p.detail]; }))));
    });
    box.appendChild(el("h4", {}, [document.createTextNode("prompts "), save]));
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

  function renderDetail(card, c, userOpened) {
    if (state.rendered[c.card]) { return; }
    state.rendered[c.card] = true;
    var d = readBlock("sad-card-" + c.card) || {};
    var box = card.querySelector(".detail");
    if (c.counterexample) {
      box.appendChild(el("h4", {text: "counterexample (roles marked)"}));
      var cx = d.counterexample_tokens && d.counterexample_tokens.length
        ? tokenLine(d.counterexample_tokens, d.counterexample_labels || {}) : el("span", {text: c.counterexample.text});
      box.appendChild(el("div", {cls: "counterexample"}, [cx, el("div", {cls: "why", text: c.counterexample.detail})]));
      if (d.counterexample_heatmaps && d.counterexample_heatmaps.length) {
        renderHeatmaps(box, d.counterexample_heatmaps, "attention of the heads this claim names on the counterexample",
                       "counterexample-heatmaps");
      }
    }
    if (d.graph) { renderGraph(box, d.graph, c.card, !userOpened); }
    if (d.head_grid) { renderHeadGrid(box, d.head_grid); }
    if (d.heatmaps && d.heatmaps.length) {
      renderHeatmaps(box, d.heatmaps, (d.heatmap_title || "attention of the heads this claim names") +
                     " (prompt " + d.heatmaps[0].prompt + ")");
    }
    if ((d.bank !== null && d.bank !== undefined) || (d.bank_extra && d.bank_extra.length)) { renderPicker(box, d); }
    renderDetails(box, d.details);
    renderPrompts(box, d.prompts || []);
    if (d.note) { box.appendChild(el("p", {cls: "note", text: d.note})); }
  }

  /* ---------- a value per head: layers down, heads across; heads that hold outlined */
  function renderHeadGrid(box, g) {
    var L = g.values.length, H = L ? g.values[0].length : 0, cell = 16, pad = 34;
    var canvas = el("canvas", {cls: "head-grid", width: String(pad + H * cell + 4), height: String(pad + L * cell + 4),
                               role: "img", "aria-label": g.title + "; outlined: " + (g.marked.join(", ") || "none")});
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
  function heatFigure(m) {
    /* one head's attention on one prompt: weights[d][s], rows destinations, columns keys; the
       claim's cells outlined in red; hover reads a cell out (≈ for the bank's byte-quantized weights) */
    var n = m.tokens.length, cell = 14, pad = 90;
    var canvas = el("canvas", {width: String(pad + n * cell + 4), height: String(pad + n * cell + 4),
                               "data-head": m.head, "data-n": String(n), "data-prompt": String(m.prompt), role: "img",
                               "aria-label": "attention of head " + m.head + " on " + promptName(m.prompt) +
                                 ": rows are destinations, columns keys"});
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
    (m.marked || []).forEach(function (c) {      // the cell the claim names
      ctx.strokeStyle = "#d62728"; ctx.lineWidth = 2;
      ctx.strokeRect(pad + c[1] * cell - 1, pad + c[0] * cell - 1, cell + 1, cell + 1);
    });
    canvas.title = "head " + m.head + ": rows are destinations, columns keys";
    var readout = el("div", {cls: "heat-value", text: "hover a cell for its weight"});
    canvas.addEventListener("mousemove", function (evt) {
      var r = canvas.getBoundingClientRect();
      var s = Math.floor((evt.clientX - r.left - pad) / cell), d = Math.floor((evt.clientY - r.top - pad) / cell);
      if (d >= 0 && d < n && s >= 0 && s <= d) {
        readout.textContent = shown(m.tokens[d]) + " (" + d + ") → " + shown(m.tokens[s]) + " (" + s + "): " +
          (m.approx ? "≈ " : "") + fmt(m.weights[d][s]);
        readout.setAttribute("data-cell", d + "," + s);
      }
    });
    var caption = "head " + m.head + ((m.marked || []).length ? "; the claimed cell outlined in red" : "");
    return el("figure", {}, [canvas, el("figcaption", {text: caption}), readout]);
  }

  function promptName(key) { return key === "counterexample" ? "the counterexample" : "prompt " + key; }

  function heatScale() {
    return el("div", {cls: "heat-scale", "aria-label": "colour scale: attention weight 0 (white) to 1 (dark blue)"},
              [el("span", {text: "0"}), el("i"), el("span", {text: "1 (attention weight)"})]);
  }

  function renderHeatmaps(box, maps, title, cls) {
    box.appendChild(el("h4", {text: title}));
    box.appendChild(el("div", {cls: "heatmaps" + (cls ? " " + cls : "")}, maps.map(heatFigure)));
    box.appendChild(heatScale());
  }

  /* ---------- any head on any prompt of the bank (sadlang/html/patterns.py) */
  function bankWeights(b, bank, layer, head) {
    var raw = atob(b.weights), n = b.tokens.length, t = n * (n + 1) / 2, base = (layer * bank.n_heads + head) * t;
    var out = [];
    for (var d = 0; d < n; d++) {
      var row = [];
      for (var s = 0; s < n; s++) { row.push(s > d ? 0 : raw.charCodeAt(base + d * (d + 1) / 2 + s) / 255); }
      out.push(row);
    }
    return out;
  }

  function renderPicker(box, d) {
    var shared = null;
    if (d.bank !== null && d.bank !== undefined) {      // parsed once, shared by the set's cards
      shared = state.banks[d.bank] || (state.banks[d.bank] = readBlock("sad-bank-" + d.bank));
    }
    var entries = (d.bank_extra || []).concat(shared ? shared.prompts : []);
    var bank = {n_layers: d.bank_shape[0], n_heads: d.bank_shape[1]};
    if (!entries.length) { return; }
    var pick = (d.pick || ["0.0", entries[0].key]), parts = pick[0].split(".");
    var layer = el("input", {type: "number", cls: "pick-layer", min: "0", max: String(bank.n_layers - 1),
                             value: parts[0], "aria-label": "layer"});
    var head = el("input", {type: "number", cls: "pick-head", min: "0", max: String(bank.n_heads - 1),
                            value: parts[1], "aria-label": "head"});
    var prompt = el("select", {cls: "pick-prompt", "aria-label": "prompt"}, entries.map(function (b) {
      return el("option", {value: b.key, text: b.label.length > 70 ? b.label.slice(0, 69) + "…" : b.label});
    }));
    prompt.value = entries.some(function (b) { return b.key === pick[1]; }) ? pick[1] : entries[0].key;
    var show = el("button", {type: "button", cls: "pick-show", text: "draw"});
    var out = el("div", {cls: "heatmaps picked"});
    var note = el("span", {cls: "pick-note"});
    function draw() {
      var l = parseInt(layer.value, 10), h = parseInt(head.value, 10);
      var b = entries.filter(function (e) { return e.key === prompt.value; })[0];
      out.textContent = "";
      if (!(l >= 0 && l < bank.n_layers && h >= 0 && h < bank.n_heads)) {
        note.textContent = "layers are 0–" + (bank.n_layers - 1) + ", heads 0–" + (bank.n_heads - 1);
        return;
      }
      note.textContent = "";
      out.appendChild(heatFigure({head: l + "." + h, prompt: b.key, tokens: b.tokens, approx: true,
                                  weights: bankWeights(b, bank, l, h), marked: (d.bank_cells || {})[b.key] || []}));
    }
    show.addEventListener("click", draw);
    [layer, head, prompt].forEach(function (x) { x.addEventListener("change", draw); });
    box.appendChild(el("h4", {text: "any head on any of these prompts"}));
    box.appendChild(el("div", {cls: "heat-picker"}, [document.createTextNode("head "), layer,
      document.createTextNode("."), head, document.createTextNode(" on "), prompt, show, note]));
    box.appendChild(out);
    box.appendChild(heatScale());
    if (!(d.heatmaps || []).length && !(d.counterexample_heatmaps || []).length) { draw(); }   // else on demand
  }

  /* ---------- circuit viewer
     Only the strongest edges are drawn (TOP_K by default, "show more" adds), with the nodes they
     join: cytoscape holds what is shown, never the whole trace, so a 20,000-edge combined trace
     opens as fast as a small one. Shown nodes are laid out on a grid of (layer row, token column),
     each column as wide as its fullest cell, so nodes never overlap; the view is fitted but never
     zoomed out below MIN_ZOOM, where labels stop being readable. */
  var TOP_K = 40, MIN_ZOOM = 0.8, NODE_W = 58, NODE_GAP = 10, ROW_H = 70, BIG_GRAPH = 400;
  var SIDE_DASH = {query: "solid", key: "dashed", value: "dotted", seed: "solid", all: "solid", node: "solid"};

  function renderGraph(box, g, cardId, deferred) {
    if (deferred && g.nodes.length + g.edges.length > BIG_GRAPH) {
      var note = el("div", {cls: "deferred"}, [
        el("span", {text: g.title + ": " + g.nodes.length + " nodes, " + g.edges.length + " edges. "}),
        el("button", {type: "button", cls: "draw-graph", text: "draw the circuit"})]);
      box.appendChild(note);
      note.querySelector("button").addEventListener("click", function () {
        box.removeChild(note); drawGraph(box, g, cardId);
      });
      return;
    }
    drawGraph(box, g, cardId);
  }

  function drawGraph(box, g, cardId) {
    var edgesByWeight = g.edges.slice().sort(function (a, b) { return Math.abs(b.weight) - Math.abs(a.weight); });
    var nodeById = {};
    g.nodes.forEach(function (n) { nodeById[n.id] = n; });
    var wmax = edgesByWeight.length ? Math.abs(edgesByWeight[0].weight) || 1 : 1;
    var info = el("div", {cls: "edge-info", "aria-live": "polite",
                          text: "click an edge for its signal; click a node for its inputs, outputs and path to the logit"});
    var count = el("span", {cls: "edge-count"});
    var topK = el("input", {type: "number", cls: "top-k", min: "1", max: String(Math.max(1, g.edges.length)),
                            value: String(Math.min(TOP_K, Math.max(1, g.edges.length))),
                            "aria-label": "number of strongest edges to draw"});
    var more = el("button", {type: "button", cls: "show-more", text: "show more"});
    var fitAll = el("button", {type: "button", cls: "fit-all", text: "fit all"});
    var weight = el("input", {type: "range", cls: "weight-filter", min: "0", max: String(wmax),
                              step: String(wmax / 200), value: "0", "aria-label": "minimum edge weight"});
    var weightLabel = el("span", {cls: "weight-value", text: "0"});
    var exports = ["png", "svg", "json", "csv"].map(function (f) {
      return el("button", {type: "button", cls: "export-" + f, text: f.toUpperCase(),
                           "aria-label": "save the drawn graph as " + f.toUpperCase()});
    });
    var controls = [el("label", {}, [document.createTextNode("top "), topK, document.createTextNode(" edges")]),
                    el("span", {cls: "graph-buttons"}, [more, fitAll]),
                    el("span", {cls: "graph-buttons"}, [document.createTextNode("save ")].concat(exports)),
                    el("label", {}, [document.createTextNode("min edge weight "), weight, weightLabel])];
    var freq = null, freqLabel = null;
    if (g.aggregated) {
      freq = el("input", {type: "range", cls: "freq-filter", min: "0", max: "1", step: "0.05",
                          value: String(g.min_frequency || 0), "aria-label": "minimum node frequency"});
      freqLabel = el("span", {cls: "freq-value", text: fmt(g.min_frequency || 0)});
      controls.push(el("label", {}, [document.createTextNode("min frequency "), freq, freqLabel]));
    }
    controls.push(count);
    var holder = el("div", {cls: "graph", id: "graph-" + cardId, role: "img", tabindex: "0",
                            "aria-label": g.title + ": circuit graph; the table beside it lists the drawn edges"});
    var legend = el("div", {cls: "legend"}, Object.keys(SIDE_COLOUR).map(function (s) {
      var dash = SIDE_DASH[s] === "solid" ? "" : SIDE_DASH[s];
      return el("span", {}, [el("i", {cls: dash, style: "border-top-color:" + SIDE_COLOUR[s]}),
                             document.createTextNode(s + (dash ? " (" + dash + ")" : ""))]);
    }));
    var list = el("ol", {cls: "edge-list", "aria-label": "drawn edges, strongest first"});
    box.appendChild(el("h4", {text: g.title}));
    box.appendChild(el("div", {cls: "graph-controls"}, controls));
    box.appendChild(el("div", {cls: "graph-wrap"}, [holder, el("aside", {}, [legend, info])]));
    box.appendChild(el("details", {cls: "edge-list-box"}, [el("summary", {text: "drawn edges (keyboard: Tab to an edge, Enter selects it)"}), list]));
    var claimed = {}, extra = {}, claimedEdge = {}, extraEdge = {};
    (g.claimed || []).forEach(function (id) { claimed[id] = true; });
    (g.extra || []).forEach(function (id) { extra[id] = true; });
    (g.claimed_edges || []).forEach(function (id) { claimedEdge[id] = true; });
    (g.extra_edges || []).forEach(function (id) { extraEdge[id] = true; });
    var cy = cytoscape({
      container: holder, elements: [], layout: {name: "preset"}, minZoom: 0.05, maxZoom: 4,
      style: [
        {selector: "node", style: {"label": "data(label)", "font-size": 13, "text-valign": "center",
          "shape": "round-rectangle", "width": NODE_W - 4, "height": 22, "border-width": 1, "border-color": "#555",
          "background-color": function (n) { return KIND_COLOUR[n.data("kind")] || "#eee"; }}},
        {selector: "node[kind = 'axis']", style: {"background-opacity": 0, "border-width": 0, "width": 100,
          "font-size": 11, "color": "#444", "text-wrap": "ellipsis", "text-max-width": 100, "events": "no"}},
        {selector: "node.claimed", style: {"border-width": 3, "border-color": "#1b5e20"}},
        {selector: "node.extra", style: {"border-width": 3, "border-color": "#b34700", "border-style": "dashed"}},
        {selector: "edge", style: {"curve-style": "bezier", "target-arrow-shape": "triangle", "arrow-scale": 0.7,
          "opacity": 0.75, "line-color": function (e) { return SIDE_COLOUR[e.data("side")] || "#000"; },
          "line-style": function (e) { return SIDE_DASH[e.data("side")] || "solid"; },
          "target-arrow-color": function (e) { return SIDE_COLOUR[e.data("side")] || "#000"; },
          "width": function (e) { return 1 + 5 * Math.abs(e.data("weight")) / wmax; }}},
        {selector: "edge.claimed", style: {"opacity": 1, "underlay-color": "#1b5e20", "underlay-opacity": 0.35,
          "underlay-padding": 5}},
        {selector: "edge.extra", style: {"opacity": 1, "underlay-color": "#b34700", "underlay-opacity": 0.35,
          "underlay-padding": 5}},
        {selector: ".faded", style: {"opacity": 0.12}},
        {selector: ".path", style: {"opacity": 1, "border-width": 3, "border-color": "#000"}},
        {selector: "node:selected", style: {"border-width": 4, "border-color": "#000", "overlay-color": "#000",
          "overlay-opacity": 0.12, "overlay-padding": 4}},
        {selector: "edge:selected", style: {"opacity": 1, "z-index": 99, "line-color": "#000",
          "target-arrow-color": "#000", "underlay-color": "#ffd54f", "underlay-opacity": 0.9,
          "underlay-padding": 4}}
      ]
    });
    state.graphs[cardId] = cy;

    function wanted() {
      var k = Math.max(1, parseInt(topK.value, 10) || TOP_K);
      var wmin = parseFloat(weight.value), fmin = freq ? parseFloat(freq.value) : 0;
      var keepNode = function (id) {
        var n = nodeById[id]; return n && !(n.frequency !== undefined && n.frequency < fmin);
      };
      var edges = [], marked = g.edges.filter(function (e) {   // what the claim names is drawn first
        return (claimedEdge[e.id] || extraEdge[e.id]) && keepNode(e.source) && keepNode(e.target);
      });
      for (var i = 0; i < edgesByWeight.length && edges.length < k; i++) {
        var e = edgesByWeight[i];
        if (Math.abs(e.weight) >= wmin && keepNode(e.source) && keepNode(e.target) && marked.indexOf(e) < 0) {
          edges.push(e);
        }
      }
      edges = marked.concat(edges);
      var ids = {};
      edges.forEach(function (e) { ids[e.source] = true; ids[e.target] = true; });
      g.nodes.forEach(function (n) {           // the logit root, and every node of an edgeless view
        if ((n.kind === "root" || !g.edges.length) && keepNode(n.id)) { ids[n.id] = true; }
      });
      return {edges: edges, nodes: g.nodes.filter(function (n) { return ids[n.id]; }), passing: edgesByWeight.filter(
        function (e) { return Math.abs(e.weight) >= wmin && keepNode(e.source) && keepNode(e.target); }).length};
    }

    function layout(nodes) {
      /* rows: the server's layer rows (y); columns: token columns, as wide as their fullest cell */
      var cells = {}, widest = {}, rows = {};
      nodes.forEach(function (n) {
        var key = n.column + "|" + n.y;
        (cells[key] = cells[key] || []).push(n);
        widest[n.column] = Math.max(widest[n.column] || 0, cells[key].length);
        rows[n.y] = true;
      });
      var cols = Object.keys(widest).map(Number).sort(function (a, b) { return a - b; });
      var ys = Object.keys(rows).map(Number).sort(function (a, b) { return a - b; });
      var yOf = {};                            // only the rows drawn take space, ROW_H apart
      ys.forEach(function (y, k) { yOf[y] = k * ROW_H; });
      var x0 = {}, x = 0;
      cols.forEach(function (c) { x0[c] = x; x += Math.max(110, widest[c] * (NODE_W + NODE_GAP)); });
      var pos = {};
      Object.keys(cells).forEach(function (key) {
        var group = cells[key].sort(function (a, b) { return a.id < b.id ? -1 : 1; });
        var col = group[0].column, span = Math.max(110, widest[col] * (NODE_W + NODE_GAP));
        var start = x0[col] + (span - group.length * (NODE_W + NODE_GAP)) / 2 + (NODE_W + NODE_GAP) / 2;
        group.forEach(function (n, k) { pos[n.id] = {x: start + k * (NODE_W + NODE_GAP), y: yOf[n.y]}; });
      });
      var axes = [];
      var bottom = ys.length ? yOf[ys[ys.length - 1]] : 0;
      cols.forEach(function (c) {
        axes.push({group: "nodes", data: {id: "__col" + c, label: g.columns[c] || "", kind: "axis"},
                   position: {x: x0[c] + Math.max(110, widest[c] * (NODE_W + NODE_GAP)) / 2, y: bottom + 60},
                   selectable: false, grabbable: false});
      });
      (g.rows || []).forEach(function (r, i) {
        if (rows[r[0]]) {
          axes.push({group: "nodes", data: {id: "__row" + i, label: r[1], kind: "axis"},
                     position: {x: -70, y: yOf[r[0]]}, selectable: false, grabbable: false});
        }
      });
      return {pos: pos, axes: axes};
    }

    function view() {
      var keep = cy.nodes().filter(function (n) { return n.data("kind") !== "axis"; });
      if (!keep.length) { return; }
      cy.fit(cy.nodes(), 24);                  // the nodes and their layer and token labels
      if (cy.zoom() < MIN_ZOOM) {             // too many to fit at a readable size: start at the logit, on top
        var root = cy.nodes("[kind = 'root']");
        var at = (root.length ? root : keep).boundingBox();
        cy.zoom(MIN_ZOOM);
        cy.pan({x: holder.clientWidth / 2 - MIN_ZOOM * (at.x1 + at.x2) / 2, y: 30 - MIN_ZOOM * at.y1});
      }
      holder.setAttribute("data-zoom", String(Math.round(cy.zoom() * 1000) / 1000));
    }

    function apply() {
      var w = wanted();
      weightLabel.textContent = fmt(parseFloat(weight.value));
      if (freqLabel) { freqLabel.textContent = fmt(parseFloat(freq.value)); }
      var placed = layout(w.nodes);
      cy.batch(function () {
        cy.elements().remove();
        cy.add(w.nodes.map(function (n) {
          return {group: "nodes", data: n, position: placed.pos[n.id],
                  classes: claimed[n.id] ? "claimed" : (extra[n.id] ? "extra" : "")};
        }).concat(placed.axes).concat(w.edges.map(function (e) {
          return {group: "edges", data: e, classes: claimedEdge[e.id] ? "claimed" : (extraEdge[e.id] ? "extra" : "")};
        })));
      });
      view();
      count.textContent = w.edges.length + " of " + g.edges.length + " edges shown (the strongest " +
        w.edges.length + " of " + w.passing + " passing the filters)";
      count.setAttribute("data-visible", String(w.edges.length));
      count.setAttribute("data-passing", String(w.passing));
      holder.removeAttribute("data-path");
      list.textContent = "";
      w.edges.forEach(function (e) {
        var item = el("li", {tabindex: "0", "data-edge": e.id,
                             text: e.source + " → " + e.target + " (" + e.side + ", " + fmt(e.weight) + ")"});
        item.addEventListener("keydown", function (evt) {
          if (evt.key === "Enter" || evt.key === " ") { evt.preventDefault(); selectEdge(cy.getElementById(e.id)); }
        });
        item.addEventListener("click", function () { selectEdge(cy.getElementById(e.id)); });
        list.appendChild(item);
      });
    }
    topK.addEventListener("change", apply);
    more.addEventListener("click", function () {
      topK.value = String(Math.min(g.edges.length, 2 * (parseInt(topK.value, 10) || TOP_K))); apply();
    });
    fitAll.addEventListener("click", function () {
      cy.fit(cy.nodes(), 24);
      holder.setAttribute("data-zoom", String(Math.round(cy.zoom() * 1000) / 1000));
    });
    weight.addEventListener("input", apply);
    if (freq) { freq.addEventListener("input", apply); }
    apply();

    function drawn() {
      return {nodes: cy.nodes().filter(function (n) { return n.data("kind") !== "axis"; }).map(function (n) {
                var d = n.data(); return {id: d.id, label: d.label, kind: d.kind, layer: d.layer, head: d.head,
                                          column: d.column, frequency: d.frequency, x: n.position("x"), y: n.position("y")};
              }),
              edges: cy.edges().map(function (e) {
                var d = e.data(); return {id: d.id, source: d.source, target: d.target, side: d.side,
                                          weight: d.weight, frequency: d.frequency};
              })};
    }
    function svg() {
      /* the drawn graph as standalone SVG: edges as lines (side colour and dash), nodes as labelled boxes */
      var bb = cy.elements().boundingBox(), pad = 20;
      var esc = function (t) { return String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); };
      var dash = {dashed: ' stroke-dasharray="6 4"', dotted: ' stroke-dasharray="2 3"', solid: ""};
      var parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="' + (bb.x1 - pad) + " " + (bb.y1 - pad) + " " +
                   (bb.w + 2 * pad) + " " + (bb.h + 2 * pad) + '" font-family="sans-serif" font-size="13">',
                   "<title>" + esc(g.title) + "</title>"];
      cy.edges().forEach(function (e) {
        var s = e.source().position(), t = e.target().position(), side = e.data("side");
        parts.push('<line x1="' + s.x + '" y1="' + s.y + '" x2="' + t.x + '" y2="' + t.y + '" stroke="' +
                   (SIDE_COLOUR[side] || "#000") + '" stroke-width="' + (1 + 5 * Math.abs(e.data("weight")) / wmax) +
                   '"' + (dash[SIDE_DASH[side] || "solid"] || "") + "><title>" + esc(e.data("source") + " -> " +
                   e.data("target") + " (" + side + ", " + fmt(e.data("weight")) + ")") + "</title></line>");
      });
      cy.nodes().forEach(function (n) {
        var p = n.position(), d = n.data();
        if (d.kind === "axis") {
          parts.push('<text x="' + p.x + '" y="' + p.y + '" text-anchor="middle" fill="#444" font-size="11">' +
                     esc(d.label) + "</text>");
          return;
        }
        parts.push('<rect x="' + (p.x - (NODE_W - 4) / 2) + '" y="' + (p.y - 11) + '" width="' + (NODE_W - 4) +
                   '" height="22" rx="4" fill="' + (KIND_COLOUR[d.kind] || "#eee") + '" stroke="#555"/>');
        parts.push('<text x="' + p.x + '" y="' + (p.y + 4) + '" text-anchor="middle">' + esc(d.label) + "</text>");
      });
      parts.push("</svg>");
      return parts.join("\n");
    }
    exports[0].addEventListener("click", function () { download("circuit.png", cy.png({full: true, scale: 2, bg: "#ffffff"})); });
    exports[1].addEventListener("click", function () { downloadText("circuit.svg", "image/svg+xml", svg()); });
    exports[2].addEventListener("click", function () {
      downloadText("circuit.json", "application/json", JSON.stringify(drawn(), null, 1));
    });
    exports[3].addEventListener("click", function () {
      downloadText("edges.csv", "text/csv", csv([["source", "target", "side", "weight", "frequency"]].concat(
        drawn().edges.map(function (e) { return [e.source, e.target, e.side, e.weight, e.frequency]; }))));
    });

    function show(rows) {
      info.textContent = "";
      info.appendChild(el("table", {cls: "kv"}, rows.map(function (kv) {
        return el("tr", {}, [el("th", {text: kv[0]}), el("td", {cls: "v-" + kv[0].replace(/ /g, "-"), text: kv[1]})]);
      })));
    }
    function selectEdge(edge) {
      cy.elements().unselect();
      edge.select();
      var e = edge.data();
      var rows = [["edge", e.source + " → " + e.target], ["side", e.side], ["weight", fmt(e.weight)],
                  ["singular directions", JSON.stringify(e.svs)],
                  ["signal norm", e.signal_norm !== undefined ? fmt(e.signal_norm) : "not recorded"]];
      if (e.frequency !== undefined) { rows.push(["frequency", fmt(e.frequency)]); }
      show(rows);
      info.setAttribute("data-edge", e.id);
    }
    function edgeTable(caption, edges, end) {
      var sorted = edges.slice().sort(function (a, b) { return Math.abs(b.weight) - Math.abs(a.weight); });
      return el("table", {cls: "node-table " + caption}, [el("caption", {text: caption + " (" + sorted.length + ")"})]
        .concat(sorted.map(function (e) {
          return el("tr", {}, [el("td", {text: e[end]}), el("td", {text: e.side}), el("td", {text: fmt(e.weight)})]);
        })));
    }
    cy.on("tap", "edge", function (evt) { selectEdge(evt.target); });
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
      var id = node.id();                       // every input and output in the trace, not only the drawn ones
      info.appendChild(edgeTable("inputs", g.edges.filter(function (e) { return e.target === id; }), "source"));
      info.appendChild(edgeTable("outputs", g.edges.filter(function (e) { return e.source === id; }), "target"));
    });
    cy.on("tap", function (evt) {
      if (evt.target === cy) { cy.elements().removeClass("faded path"); holder.removeAttribute("data-path"); }
    });
  }

  var data = readBlock("sad-data");
  renderSummary(data);
  renderCards(data);
  if (state.applyFilters) { state.applyFilters(); }
  state.readyAt = performance.now();          // benchmarks/viewer.py reads it
  document.body.setAttribute("data-ready", "1");
})();
