"""`write_outputs`: how every `edgespec bench` mode saves its results — STEM.json, STEM.md and,
with a plot, STEM.png in one folder — and the line saying where. File writing only; the modes
build the payload, the Markdown and the figure.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable


def write_outputs(out_dir: str | pathlib.Path, stem: str, payload: dict, markdown: str,
                  plot: Callable[[pathlib.Path], None] | None = None) -> str:
    """Write the files (creating `out_dir`); return "wrote A, B and C"."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_text(json.dumps(payload, indent=1))
    paths[1].write_text(markdown)
    if plot is not None:
        paths.append(out / f"{stem}.png")
        plot(paths[-1])
    names = [str(p) for p in paths]
    return f"wrote {', '.join(names[:-1])} and {names[-1]}"
