"""affectflow: continuous emotion recognition from face video.

Reproduces Khorrami et al., "How deep neural networks can improve emotion
recognition on video data" (ICIP 2016) as a Snakemake workflow over this
package: dlib face alignment, a single-frame CNN, a frozen-CNN + RNN over a
window of frames, valence regression scored by RMSE, Pearson CC and CCC.
"""

__version__ = "0.1.0"
