"""Structure of the jslinked density slider (the link itself only runs in a browser)."""
import os
import sys

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))

import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from ipywidgets.embed import embed_data  # noqa: E402
from ipywidgets.widgets.widget_link import Link  # noqa: E402

import synthetic  # noqa: E402
from lt_core.book import plots
from lt_core.book import views  # noqa: E402
from lt_core.chapters import lenet_mnist  # noqa: E402

DENSITIES = [0.211, 1.0, 0.036]
MASKS = synthetic.make_masks(DENSITIES)


def _view():
    return views.density_slider_view(lambda d: lenet_mnist.mask_picture({d: MASKS[d]}), DENSITIES)


def test_structure_and_labels():
    box = _view()
    slider, stack = box.children
    assert isinstance(slider, widgets.SelectionSlider) and isinstance(stack, widgets.Stack)
    assert slider.options == ("100.0%", "21.1%", "3.6%")  # dense first, like the plots' x axes
    assert len(stack.children) == len(DENSITIES) and stack.selected_index == 0
    pngs = [bytes(img.value) for img in stack.children]  # Image stores a memoryview
    assert all(isinstance(img, widgets.Image) and img.format == "png" for img in stack.children)
    assert all(p.startswith(b"\x89PNG") and len(p) > 1000 for p in pngs)
    assert len(set(pngs)) == len(pngs)  # each density rendered its own picture


def test_jslink_between_slider_index_and_stack():
    box = _view()
    link = box.link
    assert type(link) is Link  # jslink's two-way widget (a dlink is a subclass, not this)
    assert link.source == (box.slider, "index")
    assert link.target == (box.stack, "selected_index")


def test_link_and_images_are_in_the_embedded_state():
    # what the static HTML page gets: the full widget state, incl. the link and the PNG buffers
    box = _view()
    state = embed_data(views=[box])["manager_state"]["state"]
    assert box.link.model_id in state
    assert state[box.link.model_id]["state"]["source"][0] == f"IPY_MODEL_{box.slider.model_id}"
    img = box.stack.children[1]
    assert state[img.model_id].get("buffers"), "PNG bytes must travel as widget buffers"


def test_figure_png_closes_pyplot_figures():
    fig = plt.figure()
    fig.gca().plot([0, 1])
    data = views.figure_png(fig)
    assert data.startswith(b"\x89PNG") and not plt.fignum_exists(fig.number)


def test_duplicate_one_decimal_labels_get_more_digits():
    box = views.density_slider_view(lambda d: lenet_mnist.mask_picture({d: MASKS[1.0]}), [0.2111, 0.2109])
    assert box.slider.options == ("21.11%", "21.09%")
