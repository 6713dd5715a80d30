"""A sparsity slider that works live in a kernel and in the static HTML book alike.

The book is built from executed notebooks with no kernel behind the pages, so nothing may depend
on Python callbacks (`observe`) at view time. Instead every density's figure is rendered up front
into PNG bytes held by an `ipywidgets.Image` (the embedded widget state stores the bytes), the
images sit in an `ipywidgets.Stack`, and the slider drives the stack through `jslink`: a link
that runs in the browser, so moving the slider switches figures with or without a kernel.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def figure_png(fig: Figure, dpi: int = 90, colors: int = 128) -> bytes:
    """PNG bytes of `fig`, as a palette image of `colors` colours (a third of the bytes of full colour for
    these plots, and the page embeds one per level: see `compact_png`); the figure is closed afterwards so
    precomputing many costs no memory."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    # pyplot-managed figures stay registered (and get re-shown by the notebook) until closed;
    # plain Figure objects, as lt_core.book.plots makes, are a no-op here and simply get dropped
    plt.close(fig)
    return compact_png(buf.getvalue(), colors)


def compact_png(png: bytes, colors: int = 128) -> bytes:
    """The same picture as a palette PNG of at most `colors` colours, without dithering (plots are flat
    colours and anti-aliased edges), or the original bytes when that is not smaller."""
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return out.getvalue() if out.tell() < len(png) else png


def _labels(densities: Sequence[float]) -> list[str]:
    """'21.1%' labels; more decimals only if one decimal would make two options identical."""
    for digits in (1, 2, 3, 4):
        labels = [f"{100 * d:.{digits}f}%" for d in densities]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{100 * d:.6g}% ({i})" for i, d in enumerate(densities)]


def density_slider_view(render: Callable[[float], Figure], densities: Sequence[float],
                        description: str = "P_m", dpi: int = 90) -> widgets.VBox:
    """VBox(slider, stack of precomputed images); the slider is jslinked to the stack.

    `render(density)` must return a matplotlib Figure. Densities are shown dense-first (left) to
    sparse (right), like the x axes of the chapter's plots. The slider, stack and link are also
    kept as attributes `.slider`, `.stack`, `.link` of the returned box.
    """
    ds = sorted({float(d) for d in densities}, reverse=True)
    if not ds:
        raise ValueError("density_slider_view needs at least one density")
    return slider_view(render, ds, _labels(ds), description, dpi)


def slider_view(render: Callable, values: Sequence, labels: Sequence[str], description: str,
                dpi: int = 90) -> widgets.VBox:
    """The same for any values in the order given, each shown by its label (e.g. the iteration at which a
    ticket is drawn)."""
    if not values or len(values) != len(labels) or len(set(labels)) != len(labels):
        raise ValueError(f"slider_view needs one distinct label per value, not {list(labels)} for {list(values)}")
    images = [widgets.Image(value=figure_png(render(v), dpi=dpi), format="png") for v in values]
    stack = widgets.Stack(children=images, selected_index=0)
    slider = widgets.SelectionSlider(options=list(labels), index=0, description=description,
                                     continuous_update=True, style={"description_width": "initial"},
                                     layout=widgets.Layout(width="min(100%, 560px)"))
    # jslink, not observe: the link must keep working in the kernel-less HTML page
    link = widgets.jslink((slider, "index"), (stack, "selected_index"))
    box = widgets.VBox([slider, stack])
    # keep Python references: the link widget has no view, and tests/notebooks may inspect them
    box.slider, box.stack, box.link = slider, stack, link
    return box
