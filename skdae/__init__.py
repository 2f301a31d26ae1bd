"""skdae: denoising autoencoders for the scikit-learn ecosystem."""

from ._autoencoder import DenoisingAutoencoder
from ._classifier import StackedDenoisingAutoencoderClassifier
from ._marginalized import MarginalizedDenoisingAutoencoder
from ._stacked import StackedDenoisingAutoencoder

__all__ = [
    "DenoisingAutoencoder",
    "MarginalizedDenoisingAutoencoder",
    "StackedDenoisingAutoencoder",
    "StackedDenoisingAutoencoderClassifier",
]
__version__ = "0.1.0"
