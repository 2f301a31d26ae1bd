"""skdae: denoising autoencoders for the scikit-learn ecosystem."""

from ._autoencoder import DenoisingAutoencoder

__all__ = ["DenoisingAutoencoder"]
__version__ = "0.1.0"
