"""The HTML representation links every estimator to its API page."""

import inspect
import re

import pytest
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline

import skdae
from skdae._repr import DOCS_URL

PUBLIC_ESTIMATORS = sorted(
    name for name in skdae.__all__
    if inspect.isclass(getattr(skdae, name))
    and issubclass(getattr(skdae, name), BaseEstimator))

# What this scikit-learn draws for its own estimators: the parameter table
# with per-parameter help arrived in scikit-learn 1.7.
SKLEARN_HAS_PARAM_HELP = "param-doc-link" in PCA()._repr_html_()


def test_the_documented_estimators_are_checked():
    # docs/api.rst documents each public estimator on its generated/ page.
    with open("docs/api.rst") as f:
        api = f.read()
    for name in PUBLIC_ESTIMATORS:
        assert re.search(rf"^\s+{name}$", api, re.MULTILINE), name


@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_html_repr_links_to_the_api_page(name):
    estimator = getattr(skdae, name)()
    url = f"{DOCS_URL}generated/skdae.{name}.html"
    assert estimator._get_doc_link() == url
    html = estimator._repr_html_()
    assert f'href="{url}"' in html
    # Inside a pipeline too.
    assert f'href="{url}"' in make_pipeline(estimator)._repr_html_()


@pytest.mark.skipif(not SKLEARN_HAS_PARAM_HELP,
                    reason="scikit-learn < 1.7 draws no parameter help")
@pytest.mark.parametrize("name", PUBLIC_ESTIMATORS)
def test_html_repr_explains_every_parameter(name):
    estimator = getattr(skdae, name)()
    html = estimator._repr_html_()
    url = f"{DOCS_URL}generated/skdae.{name}.html"
    params = estimator.get_params(deep=False)
    for param in params:
        # A link to the parameter's entry of the API page, and its help
        # ("name: type, default=x", then the description) from the docstring.
        assert f'href="{url}#:~:text={param},' in html, param
        assert f"{param}: " in html, param
    assert html.count('class="param-doc-description"') == len(params)
