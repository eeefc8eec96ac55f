"""Tiny model settings shared by the trainer tests (argbind-style config keys)."""

# HiFi++ small enough for one CPU step in well under a second.
TINY_HIFIPP = {
    "HiFiPlusPlus.n_fft": 256,
    "HiFiPlusPlus.n_mels": 16,
    "HiFiPlusPlus.spectral_widths": [4, 8],
    "HiFiPlusPlus.upsample_rates": [8, 4],
    "HiFiPlusPlus.upsample_channels": 16,
    "HiFiPlusPlus.resblock_kernels": [3],
    "HiFiPlusPlus.resblock_dilations": [1, 3],
    "HiFiPlusPlus.waveunet_widths": [4, 8],
    "HiFiPlusPlus.waveunet_factors": [4],
    "HiFiPlusPlus.mask_n_fft": 256,
    "HiFiPlusPlus.mask_hop": 64,
    "HiFiPlusPlus.mask_widths": [4, 8],
    "HiFiPlusPlus.head_widths": [4, 8],
    "HiFiPlusPlus.head_factors": [4],
}
