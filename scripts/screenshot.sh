#!/usr/bin/env bash
# Render a report page in headless Chromium and check the picture is not blank.
# Usage: scripts/screenshot.sh REPORT_HTML OUT_PNG [WIDTHxHEIGHT]
# Installs Debian's chromium when missing. Exits non-zero if the screenshot is missing or blank
# (fewer than 16 distinct byte patterns among sampled, PNG-filtered pixels: a blank page filters to
# almost all zeros), so a broken page fails CI instead of passing unseen.
set -euo pipefail
html=${1:?usage: $0 REPORT_HTML OUT_PNG [WIDTHxHEIGHT]}
png=${2:?usage: $0 REPORT_HTML OUT_PNG [WIDTHxHEIGHT]}
size=${3:-1280x2400}
if ! command -v chromium >/dev/null; then
    echo "screenshot: installing chromium (Debian package)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
abs=$(realpath "$html")
rm -f "$png"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="${size/x/,}" --screenshot="$png" "file://$abs" >/dev/null 2>&1 || true
[ -s "$png" ] || { echo "screenshot: chromium wrote no image for $html" >&2; exit 1; }
python3 - "$png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width, height, colour = 8, b"", 0, 0, 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, _, colour = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
raw = zlib.decompress(idat)
channels = {2: 3, 6: 4}.get(colour, 3)
stride = width * channels + 1
colours = set()
for row in range(0, height, max(1, height // 200)):
    line = raw[row * stride + 1:(row + 1) * stride]
    for x in range(0, len(line) - channels, channels * max(1, width // 200)):
        colours.add(line[x:x + 3])
print(f"screenshot: {width}x{height}, {len(colours)} distinct pixel samples")
sys.exit(0 if len(colours) >= 16 else 1)
PY
