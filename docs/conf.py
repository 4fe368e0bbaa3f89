"""Sphinx configuration of the testbench documentation (``sphinx-build -W -b html docs OUT``)."""

import testbench

project = "testbench"
author = "testbench contributors"
release = version = testbench.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",  # Markdown: the guide pages include sections of README.md
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

# the guide includes README.md sections; their links point inside the repository (relative
# file paths, anchors of other README sections), which are no targets of this site
suppress_warnings = ["myst.xref_missing"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections state the types, with units and ranges
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "alabaster"
html_static_path = []
