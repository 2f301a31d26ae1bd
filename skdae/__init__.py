"""skdae: denoising autoencoders for the scikit-learn ecosystem."""

import importlib as _importlib

# Each public class and the private module defining it. ``import skdae``
# imports none of them: a class's module (and what it needs of scikit-learn,
# Numba, narwhals...) is imported on first access (PEP 562), so a script
# using one estimator does not pay the import of the others.
_MODULES = {
    "DenoisingAutoencoder": "skdae._autoencoder",
    "DenoisingAutoencoderImputer": "skdae._impute",
    "MarginalizedDenoisingAutoencoder": "skdae._marginalized",
    "StackedDenoisingAutoencoder": "skdae._stacked",
    "StackedDenoisingAutoencoderClassifier": "skdae._classifier",
    "TabularDenoisingAutoencoder": "skdae._tabular",
}

__all__ = sorted(_MODULES)
__version__ = "0.1.0"

# The public classes live at their public name, as numpy's and pandas' do:
# pickles, joblib and skops files refer to ``skdae.DenoisingAutoencoder``,
# not to the private module that defines it, so saved models survive a
# reorganisation of the private modules, and skops.io.get_untrusted_types
# lists only public names. ``DocumentationLinkMixin.__init_subclass__`` sets
# their ``__module__`` when they are defined, however their module is first
# imported. Files that name the private modules still load. (inspect.getsource
# of the classes cannot find them then; of their methods it can.)


def __getattr__(name):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return [*__all__, "__version__"]
