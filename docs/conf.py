"""Sphinx configuration of the skdae documentation.

Build with ``docs/build.sh`` (warnings are errors). The build needs no
network: references to scikit-learn (its classes, glossary terms and a few
labels used by inherited docstrings) are turned into plain links to
scikit-learn.org by :func:`_link_to_sklearn` instead of intersphinx, which
would have to download an inventory.
"""

import os
import sys
import warnings

from docutils import nodes

# Document the skdae of this checkout, not another installed copy.
sys.path.insert(0, os.path.abspath(".."))

# The imputation example uses IterativeImputer: sphinx-gallery resolves its
# name in this process, also when the examples do not run (plot_gallery=0).
from sklearn.experimental import enable_iterative_imputer  # noqa: E402, F401

import skdae  # noqa: E402
from skdae._repr import DOCS_URL  # noqa: E402

project = "skdae"
author = "the skdae developers"
copyright = "2026, the skdae developers"
release = skdae.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store",
                    "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip"]
default_role = "literal"

# -- autodoc / autosummary / numpydoc -----------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Every parameter of every documented function must be documented, and only
# real parameters (a numpydoc warning, hence a build error with -W).
numpydoc_validation_checks = {"PR01", "PR02"}

# -- sphinx-gallery -----------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("skdae",),
    "backreferences_dir": "generated",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    # A failing example fails the build.
    "only_warn_on_example_error": False,
    "abort_on_example_error": False,
}

# Examples run headless.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings(
    "ignore", category=UserWarning,
    message="Matplotlib is currently using agg, which is a non-GUI backend")

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skdae {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": []}
html_show_sourcelink = False
# Where the site is published: the estimators' HTML repr links there too.
html_baseurl = DOCS_URL

# -- links to scikit-learn without network -----------------------------------
SKLEARN = "https://scikit-learn.org/stable/"
# Labels of scikit-learn's documentation that inherited docstrings refer to.
SKLEARN_LABELS = {
    "metadata_routing": "metadata_routing.html",
    "df_output_transform": "developers/develop.html#set-output-api",
    "sphx_glr_auto_examples_miscellaneous_plot_set_output.py":
        "auto_examples/miscellaneous/plot_set_output.html",
    "accuracy_score": "modules/model_evaluation.html#accuracy-score",
}


def _link_to_sklearn(app, env, node, contnode):
    """Resolve references to scikit-learn as links to scikit-learn.org."""
    domain, reftype = node.get("refdomain"), node.get("reftype")
    target = node.get("reftarget", "")
    uri = None
    if domain == "py" and target.startswith("sklearn."):
        uri = f"{SKLEARN}modules/generated/{target}.html"
        parts = target.split(".")
        if reftype in ("meth", "attr", "func") and parts[-1][:1].islower() \
                and parts[-2][:1].isupper():
            uri = f"{SKLEARN}modules/generated/{'.'.join(parts[:-1])}.html#{target}"
    elif domain == "std" and reftype == "term":
        uri = f"{SKLEARN}glossary.html#term-{target}"
    elif domain == "std" and reftype == "ref" and target in SKLEARN_LABELS:
        uri = SKLEARN + SKLEARN_LABELS[target]
    if uri is None:
        return None
    if reftype == "ref" and not node.get("refexplicit"):
        contnode = nodes.inline(text=target)
    ref = nodes.reference("", "", internal=False, refuri=uri,
                          reftitle="scikit-learn documentation")
    ref += contnode
    return ref


def setup(app):
    app.connect("missing-reference", _link_to_sklearn)
