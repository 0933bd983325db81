"""Render an HTML report (a model card) to PNG with headless Chromium, with the network shut.

Every host name resolves to nothing, so a page that needs the network shows it as missing
pieces in the picture; the model card must look complete without any.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # runs as root in containers and CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def chromium() -> str:
    """Path of the Chromium binary; raises with how to install it when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no Chromium found: `make chromium` (Debian: apt-get install chromium)")


def render_png(html: Path, png: Path, width: int = 1000, height: int = 7000, timeout: float = 120) -> Path:
    """Screenshot `html` at `width` px, then trim the empty bottom of the tall window."""
    from PIL import Image, ImageChops

    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png.resolve()}",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
    image = Image.open(png).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((0, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox()
    if box is not None:
        image.crop((0, 0, width, min(image.height, box[3] + 24))).save(png)
    return png


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/render_card.py CARD.html OUT.png")
    print(render_png(Path(sys.argv[1]), Path(sys.argv[2])))
