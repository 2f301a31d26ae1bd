"""skdae: denoising autoencoders for the scikit-learn ecosystem."""

from ._autoencoder import DenoisingAutoencoder
from ._classifier import StackedDenoisingAutoencoderClassifier
from ._impute import DenoisingAutoencoderImputer
from ._marginalized import MarginalizedDenoisingAutoencoder
from ._stacked import StackedDenoisingAutoencoder
from ._tabular import TabularDenoisingAutoencoder

__all__ = [
    "DenoisingAutoencoder",
    "DenoisingAutoencoderImputer",
    "MarginalizedDenoisingAutoencoder",
    "StackedDenoisingAutoencoder",
    "StackedDenoisingAutoencoderClassifier",
    "TabularDenoisingAutoencoder",
]
__version__ = "0.1.0"

# The public classes live at their public name, as numpy's and pandas' do:
# pickles, joblib and skops files refer to ``skdae.DenoisingAutoencoder``,
# not to the private module that defines it, so saved models survive a
# reorganisation of the private modules, and skops.io.get_untrusted_types
# lists only public names. Files that name the private modules still load.
# (inspect.getsource of the classes cannot find them then; of their methods
# it can.)
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
