"""The infrared/visible correlation study: does a pixel's visible appearance predict its thermal
intensity, and back?

The original experiment trained Pix2Pix on LLVIP "to test whether visible features (bright spots, red
shades) predict thermal signatures and back" and concluded from poor models that "there is no simple
rule linking the two". This module answers the question directly, per set and over all sets:

1. Association: Pearson, Spearman and binned mutual information between infrared intensity and
   visible features (luminance, R, G, B, redness, red chromaticity, saturation, local contrast,
   gradient), pooled over pixels sampled from every image.
2. Rules: how much infrared variance simple per-pixel rules explain on held-out scenes (fitted on
   the train split, scored on the test split): fixed "bright/dark is hot", a global linear map from
   RGB, and lookup tables (the conditional mean of infrared per colour cell: no per-pixel rule that
   sees only those inputs can do better at that resolution), against the per-image affine oracle of
   irvis.metrics, which sees the truth. The same for visible colour from infrared.
3. Structure: gradient magnitudes and edges of the two modalities, which can agree where
   intensities do not.

Protocol: each pair is resized so its shorter side is `short_side` (antialiased, irvis.data.load_pair);
features are computed on the whole resized frame, then `pixels_per_image` pixels are drawn per image
(seeded by the seed and the image's name, so every image weighs the same and a run is reproducible).

Modules: features (per-pixel maps and sampling), stats (correlations, MI, R^2, bootstrap), rules
(per-pixel rules and shared structure), study (analyze, run), report (sentences, Markdown), plots,
receptive (the receptive-field ablation), view (what the app shows).
"""

from irvis.analysis.features import Pixels, collect_pixels, feature_maps
from irvis.analysis.report import conclusions, markdown_report
from irvis.analysis.rules import LinearRule, LookupRule
from irvis.analysis.stats import (informational_correlation, mutual_information, pearson, r2, r2_within_images, ranks,
                                  spearman)
from irvis.analysis.study import analyze, run, write_analysis

__all__ = ["analyze", "run", "write_analysis", "markdown_report", "conclusions", "collect_pixels", "feature_maps",
           "Pixels", "pearson", "spearman", "ranks", "mutual_information", "informational_correlation", "r2",
           "r2_within_images", "LinearRule", "LookupRule"]
