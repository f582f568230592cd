"""A do-nothing matplotlib backend: the test imports sim under it and checks it is still the one in use."""

from matplotlib.backend_bases import FigureCanvasBase, FigureManagerBase


class FigureCanvas(FigureCanvasBase):
    pass


FigureManager = FigureManagerBase
