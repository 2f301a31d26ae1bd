"""Links from an estimator's HTML representation to skdae's documentation.

scikit-learn draws a "?" icon linking to the estimator's API page, and in
its parameter table (scikit-learn >= 1.7) each parameter's description from
the docstring, for every estimator whose class says where its documentation
lives. ``DocumentationLinkMixin`` says it once for all skdae estimators.
"""

# Root of the documentation that ``docs/build.sh`` builds (``docs/conf.py``
# declares it as the site's base URL); the API pages are
# ``generated/skdae.<ClassName>.html`` (``docs/api.rst``).
DOCS_URL = "https://skdae.readthedocs.io/en/stable/"


class DocumentationLinkMixin:
    """Mixin pointing scikit-learn's HTML repr at skdae's API reference.

    Goes left of ``BaseEstimator`` in the bases, which reads the two
    attributes below (``_HTMLDocumentationLinkMixin``); the module is
    ``skdae`` for every public estimator, as they are all exposed there.
    """

    _doc_link_module = "skdae"
    _doc_link_template = (
        DOCS_URL + "generated/{estimator_module}.{estimator_name}.html")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A public class says it lives in ``skdae`` (see skdae/__init__.py)
        # from its definition on, even when its private module is imported
        # directly; subclasses defined elsewhere keep their own module.
        from . import _MODULES

        if _MODULES.get(cls.__qualname__) == cls.__module__:
            cls.__module__ = "skdae"
