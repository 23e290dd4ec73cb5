"""Driving report pages in a real browser: Debian's Chromium through Playwright.

Used by tests/test_html_browser.py, which also makes the README picture (docs/ioi-report.png).
Playwright's own browser download cannot work offline, so the system Chromium is launched by
path (`SADLANG_CHROMIUM`, else `chromium` on PATH); scripts/setup-browser.sh installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARTIFACTS = Path(os.environ.get("SADLANG_ARTIFACTS", Path(__file__).resolve().parent.parent / "build" / "screenshots"))


def chromium_path() -> str | None:
    return os.environ.get("SADLANG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> None:
    """At a browser test module's top: skip the module without Chromium, except under CI=true,
    where a missing Chromium fails it (scripts/setup-browser.sh installs it)."""
    import pytest

    if chromium_path() is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing in CI: scripts/setup-browser.sh installs it (apt-get install chromium)",
                    pytrace=False)
    pytest.skip("no Chromium here: run scripts/setup-browser.sh (it installs Debian's chromium)",
                allow_module_level=True)


@dataclass
class Page:
    """An opened report page and what its console said."""

    page: Any
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Console errors and warnings, and uncaught exceptions."""
        return [(t, m) for t, m in self.messages if t in ("error", "warning", "pageerror")]

    def open_card(self, name: str) -> Any:
        card = self.page.locator(f"details.card[data-name='{name}']")
        if card.get_attribute("open") is None:
            card.locator("summary").click()
        self.page.wait_for_function(
            "name => { const c = document.querySelector(`details.card[data-name='${name}']`);"
            " return c && c.querySelector('.detail').children.length > 0; }", arg=name)
        return card

    def open_all(self) -> None:
        for name in self.page.eval_on_selector_all("details.card", "cs => cs.map(c => c.dataset.name)"):
            self.open_card(name)

    def screenshot(self, name: str, locator: Any = None) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        (locator or self.page).screenshot(path=str(path))
        return path

    def graph_card_id(self, name: str) -> int:
        return int(self.page.locator(f"details.card[data-name='{name}']").get_attribute("id").split("-")[1])

    def click_graph(self, card: int, selector: str, what: str = "edge") -> None:
        """A real mouse click on a graph element (its midpoint or centre on screen)."""
        point = self.page.evaluate(
            "([card, sel, what]) => { const cy = window.sadlang.graphs[card]; const e = cy.$(sel);"
            " const p = what === 'edge' ? e.renderedMidpoint() : e.renderedPosition();"
            " const box = cy.container().getBoundingClientRect(); return [box.left + p.x, box.top + p.y]; }",
            [card, selector, what])
        self.page.mouse.click(point[0], point[1])

    def set_slider(self, card: str, cls: str, value: float) -> None:
        self.page.eval_on_selector(
            f"details.card[data-name='{card}'] input.{cls}",
            "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }", value)


@contextmanager
def browser(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no Chromium found: install it (scripts/setup-browser.sh runs `apt-get install chromium`) "
                           "or set SADLANG_CHROMIUM to its path")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield lambda: b.new_page(viewport={"width": width, "height": height})
        finally:
            b.close()


def open_report(new_page, path: Path) -> Page:
    """Load a report from file:// and wait until its script has drawn the cards."""
    page = new_page()
    out = Page(page)
    page.on("console", lambda m: out.messages.append((m.type, m.text)))
    page.on("pageerror", lambda e: out.messages.append(("pageerror", str(e))))
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
               else route.continue_())
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']")
    return out
