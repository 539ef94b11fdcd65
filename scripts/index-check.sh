#!/usr/bin/env bash
# Check the index page's filter in a real browser: load INDEX_HTML in headless Chromium with the
# filter filled from the address (#q=caught), dump the DOM after its script ran, and check that
# the rows shown are exactly those that match, and that some are shown and some hidden.
# Usage: scripts/index-check.sh INDEX_HTML [WORDS]
# Installs Debian's chromium when missing (as scripts/screenshot.sh does).
set -euo pipefail
html=${1:?usage: $0 INDEX_HTML [WORDS]}
words=${2:-caught}
if ! command -v chromium >/dev/null; then
    echo "index-check: installing chromium (Debian package)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
abs=$(realpath "$html")
dom=$(mktemp)
trap 'rm -f "$dom"' EXIT
chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$abs#q=$words" >"$dom" 2>/dev/null || true
python3 - "$dom" "$words" <<'PY'
import re, sys
dom, words = open(sys.argv[1]).read(), sys.argv[2].lower().split()
rows = re.findall(r'<tr data-search="([^"]*)"([^>]*)>', dom)
assert rows, "index-check: no rows in the dumped page (did it load?)"
shown = [s for s, attrs in rows if "display: none" not in attrs]
hidden = [s for s, attrs in rows if "display: none" in attrs]
wrong = [s for s in shown if not all(w in s for w in words)] + [s for s in hidden if all(w in s for w in words)]
counter = re.search(r'id="shown"[^>]*>([^<]*)<', dom)
print(f"index-check: {len(rows)} rows, {len(shown)} shown for {' '.join(words)!r}: {counter.group(1) if counter else '?'}")
sys.exit(0 if shown and hidden and not wrong else 1)
PY
