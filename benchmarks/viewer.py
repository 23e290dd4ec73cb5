"""How fast the HTML circuit viewer answers, in Debian's Chromium (Playwright), on real graphs.

    python benchmarks/viewer.py [--prompts 12] [--repeats 5] [--model smollm2-135m]

Pages: the combined trace of `--prompts` IOI prompts of specs/ioi.sad (both templates; every
node and edge of every prompt's trace, combined by role) and the planted spec's check report.
For each page: ms from navigation start until the page's script has drawn it (`readyAt`), and
the ms each interaction takes in the page's own clock, until the next frame is painted: one
weight-slider step, one frequency-slider step, `show more`, one zoom step, a node tap (its
inputs/outputs table). Medians over `--repeats` page loads; the conditions are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

STEP = """async ([what, name]) => {
  const card = document.querySelector(name ? `details.card[data-name='${name}']` : 'details.card');
  const cy = window.sadlang.graphs[parseInt(card.id.split('-')[1], 10)];
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const t0 = performance.now();
  if (what === 'weight' || what === 'frequency') {
    const el = card.querySelector(what === 'weight' ? 'input.weight-filter' : 'input.freq-filter');
    if (!el) return null;
    el.value = String(parseFloat(el.value) + parseFloat(el.step || '0.05'));
    el.dispatchEvent(new Event('input'));
  } else if (what === 'more') {
    const more = card.querySelector('button.show-more');
    if (!more) return null;
    more.click();
  } else if (what === 'zoom') {
    cy.zoom({level: cy.zoom() * 1.2, renderedPosition: {x: 200, y: 200}});
  } else if (what === 'tap') {
    cy.nodes("[kind = 'head']")[0].emit('tap');
  }
  await frame();
  return performance.now() - t0;
}"""


def combined_trace_page(model_name: str, n_prompts: int, folder: Path) -> tuple[Path, int, int]:
    from sadlang.evidence.store import PromptSetEvidence
    from sadlang.html import trace_page
    from sadlang.html.views import combined_graph_view
    from sadlang.runner.executor import load_and_compile
    from sadlang.trace.graph import combine

    _, model, plan = load_and_compile(ROOT / "specs" / "ioi.sad", model_name)
    ps = plan.prompt_sets["ioi"]
    prompts = ps.prompts[:n_prompts]
    ev = PromptSetEvidence(model, prompts, plan.options, plan.settings.batch_size)
    g = combine(ev.graphs(), 0.0)
    view = combined_graph_view(g, prompts[0], model.info.n_layers, f"{len(prompts)} IOI prompts combined", 0.0)
    path = folder / "combined.html"
    path.write_text(trace_page("combined", {"prompt": "ioi", "model": model_name}, view, []))
    return path, len(view.nodes), len(view.edges)


def planted_report_page(folder: Path) -> Path:
    from sadlang.html import check_page
    from sadlang.html.views import collector
    from sadlang.runner.executor import load_and_compile, run_plan

    _, model, plan = load_and_compile(ROOT / "specs" / "planted.sad")
    views, observe = collector(plan.spec)
    report = run_plan(plan, model, observe=observe)
    path = folder / "planted.html"
    path.write_text(check_page([report], [views], [{"seconds": 1.0, "seeds": {}}]))
    return path


def measure(factory, path: Path, repeats: int, card: str | None = None) -> dict[str, float]:
    """Medians of `repeats` loads; `card`: the claim whose graph is used (opened, timed as `open`)."""
    from browser import open_report

    out: dict[str, list[float]] = {}
    for _ in range(repeats):
        page = open_report(factory, path)
        ready = page.page.evaluate("() => window.sadlang.readyAt ?? performance.now()")   # older pages: now
        out.setdefault("ready", []).append(ready)
        if card is not None:
            t0 = page.page.evaluate("() => performance.now()")
            page.open_card(card)
            out.setdefault("open", []).append(page.page.evaluate(
                "async () => { await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));"
                " return performance.now(); }") - t0)
        for what in ("weight", "frequency", "more", "zoom", "tap"):
            ms = page.page.evaluate(STEP, [what, card])
            if ms is not None:
                out.setdefault(what, []).append(ms)
        page.page.close()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    from browser import browser

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        combined, n_nodes, n_edges = combined_trace_page(args.model, args.prompts, folder)
        planted = planted_report_page(folder)
        print(f"Chromium (headless, --disable-gpu) at 1440x900; {args.repeats} page loads each, medians; "
              f"ms in the page's clock until the next frame is painted")
        with browser(1440, 900) as factory:
            for name, path, card in ((f"combined trace, {args.prompts} prompts ({n_nodes} nodes, {n_edges} edges)",
                                      combined, None),
                                     ("planted check report (29 claims; the `faithful` card's graph)", planted,
                                      "faithful")):
                m = measure(factory, path, args.repeats, card)
                print(f"{name}: size {path.stat().st_size / 1e6:.2f} MB")
                for k, v in m.items():
                    print(f"  {k:<10} {v:8.1f} ms")


if __name__ == "__main__":
    main()
