"""Metrics of sample quality.

2-D mixtures (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018): a generated point is *high quality*
when it lies within 3 standard deviations of its nearest mode centre; a mode is *covered* when at least
``min_count`` high-quality points land on it (20 of 2,500 samples in the course's benchmarks).

Images, offline (no downloaded Inception weights): the course's own small classifier
(``course_lib.classifier``, trained on the dataset's training split) gives class probabilities and penultimate
features, from which

* ``frechet_distance``: the FID formula on the classifier's features (Heusel et al. 2017);
* ``kid``: the unbiased kernel distance of Binkowski et al. 2018, mean and sd over subsets;
* ``classifier_score``: the Inception-Score formula with this classifier (Salimans et al. 2016);
* ``class_coverage``: share of classes generated and distance of the class histogram from uniform;
* ``precision_recall``: k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019);
* ``density_coverage``: (Naeem et al. 2020);
* ``memorisation``: distances of samples to their nearest training image against held-out real images'.

``evaluate_images`` computes all of them against the *reference*, the held-out test split (at most 10,000
images), and beside each the *floor*: the same metric for real images of the same number and class mix, drawn
from training images the classifier never saw (``classifier.floor_pool``), as mean and sd over resamples. A
generated value inside the floor's noise is reported as "within noise of real data", never as better than
real. All pairwise distances are computed in chunks: memory stays bounded whatever the set sizes. Values are
comparable only between runs measured with the same classifier, data and sample size.

Each concept lives in its own module; this one gathers their names (``from course_lib import metrics``):

* ``mixture_metrics``: ``mode_metrics`` of points from a Gaussian mixture;
* ``image_metrics``: the image metrics above, as formulas on features and probabilities;
* ``evaluation``: ``evaluate_images`` and ``compare_sets``, every image metric beside its floor (``floor_verdict``);
* ``report``: ``summary_request`` and ``summarize``, what a training run reports at its end (``metrics.json``).
"""
from __future__ import annotations

from .evaluation import (IMAGE_EVAL_SAMPLES, WITHIN_NOISE, compare_sets, evaluate_images, floor_verdict,
                         real_reference)
from .image_metrics import (class_coverage, classifier_score, density_coverage, frechet_distance,
                            frechet_distance_gaussians, kid, memorisation, precision_recall)
from .mixture_metrics import mode_metrics
from .report import summarize, summary_request

__all__ = ["mode_metrics", "summary_request", "summarize", "frechet_distance", "frechet_distance_gaussians",
           "kid", "classifier_score", "class_coverage", "precision_recall", "density_coverage", "memorisation",
           "evaluate_images", "compare_sets", "real_reference", "floor_verdict", "IMAGE_EVAL_SAMPLES",
           "WITHIN_NOISE"]
