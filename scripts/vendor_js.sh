#!/usr/bin/env bash
# Refresh the JavaScript the HTML report inlines (sadlang/html/assets/vendor/): the minified
# cytoscape.js build and its license, from the npm registry. Usage:
#   bash scripts/vendor_js.sh [VERSION]     (default: the version in VERSIONS)
# Then run the browser tests (tests/test_html_browser.py) before committing the new files.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=sadlang/html/assets/vendor
VERSION=${1:-$(sed -n 's/^cytoscape=//p' "$DEST/VERSIONS")}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "cytoscape@$VERSION" >/dev/null && tar xzf cytoscape-*.tgz)
cp "$TMP/package/dist/cytoscape.min.js" "$DEST/cytoscape.min.js"
cp "$TMP/package/LICENSE" "$DEST/cytoscape.LICENSE"
printf 'cytoscape=%s\n' "$VERSION" > "$DEST/VERSIONS"
echo "vendored cytoscape $VERSION: $(wc -c < "$DEST/cytoscape.min.js") bytes"
