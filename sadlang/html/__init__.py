"""The offline HTML report: views (plain data read off the evidence) and the page that shows them."""

from sadlang.html.page import check_page, trace_page
from sadlang.html.views import ClaimView, claim_view

__all__ = ["ClaimView", "check_page", "claim_view", "trace_page"]
