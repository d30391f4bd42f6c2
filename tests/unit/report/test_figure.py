"""The trade-off figure names each method once, in a legend whose texts never overlap, however
close the methods' points lie; the colour in the legend is the colour of the method's points."""

from __future__ import annotations

import itertools

import pytest

from srdistill.report.figure import Point, tradeoff_figure

# a stray mathtext marker: it must be drawn as it reads, not parsed (parsing it fails)
METHODS = ["Scratch", "KD", "RKD", "MCAD-KD", "DUKD", "KD x$^$y"]


def _crowded_points() -> list[Point]:
    """Every method at one parameter count, 0.001 dB apart: ours at x2 and x4, the paper's at
    x4 only, and one method of the paper's alone, 0.0005 dB from the first."""
    points = []
    for i, label in enumerate(METHODS):
        for scale in (2, 4):
            points.append(Point(scale, label, 90_000.0, 24.4 + i / 1000, "ours"))
        points.append(Point(4, label, 2_700_000.0, 26.2 + i / 1000, "paper"))
    return points + [Point(4, "FitNet", 2_700_000.0, 26.2005, "paper")]


@pytest.fixture(scope="module")
def drawn():
    fig = tradeoff_figure(_crowded_points(), "Urban100")
    fig.canvas.draw()
    return fig, fig.canvas.get_renderer()


def test_each_method_is_named_once_in_the_legend_and_nowhere_at_the_points(drawn):
    fig, _ = drawn
    (legend,) = fig.legends
    names = [text.get_text() for text in legend.get_texts()]
    assert names == ["ours (mean over seeds)", "paper", *METHODS, "FitNet"]
    assert all(not ax.texts for ax in fig.axes)  # no label printed beside a point


def test_no_two_texts_of_the_legend_titles_or_axis_labels_overlap(drawn):
    fig, renderer = drawn
    (legend,) = fig.legends
    texts = [*legend.get_texts()]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    boxes = [text.get_window_extent(renderer) for text in texts]
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert not a.overlaps(b), (texts[i].get_text(), texts[j].get_text())
    legend_box = legend.get_window_extent(renderer)
    for ax in fig.axes:  # the legend hides no point
        assert not legend_box.overlaps(ax.get_window_extent(renderer))


def test_a_methods_points_share_the_colour_of_its_legend_entry_and_no_other(drawn):
    fig, _ = drawn
    (legend,) = fig.legends
    by_label = {p.label for p in _crowded_points()}
    by_position = {(p.scale, p.source, p.x, p.psnr): p.label for p in _crowded_points()}
    legend_colour = {
        text.get_text(): tuple(handle.get_facecolor())
        for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
        if text.get_text() in by_label  # the methods' entries, not the two markers'
    }
    seen = set()
    for ax, scale in zip(fig.axes, (2, 4), strict=True):
        for collection in ax.collections:
            source = "paper" if collection.get_label() == "paper" else "ours"
            for (x, y), colour in zip(
                collection.get_offsets(), collection.get_facecolors(), strict=True
            ):
                label = by_position[(scale, source, x, y)]
                assert tuple(colour) == legend_colour[label], (scale, source, label)
                seen.add((scale, source, label))
    assert len(seen) == len(_crowded_points())  # every point drawn
    method_colours = [legend_colour[label] for label in [*METHODS, "FitNet"]]
    assert len(set(method_colours)) == len(method_colours)
