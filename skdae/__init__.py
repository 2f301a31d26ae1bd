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
